package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfRecord is a running `perf record` of some processes.
type perfRecord struct {
	cmd  *exec.Cmd
	path string
	out  strings.Builder
}

// startPerf samples the CPU of pids (every thread) into path. Go programs
// keep frame pointers, so their call stacks are cheap to take; Redis's
// Debian build does not, so its stacks are unwound from a copy of the
// stack (dwarf), at a lower rate.
func startPerf(pids []int, path string, freq int, dwarf bool) (*perfRecord, error) {
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	argv := []string{"perf", "record", "-q", "-o", path, "-F", strconv.Itoa(freq), "-p", strings.Join(ps, ",")}
	if dwarf {
		argv = append(argv, "--call-graph", "dwarf,16384")
	} else {
		argv = append(argv, "-g")
	}
	p := &perfRecord{path: path}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches to every thread before it samples
	return p, nil
}

// stop ends the recording and waits until the file is written.
func (p *perfRecord) stop() error {
	p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		p.cmd.Process.Kill()
		<-done
		return fmt.Errorf("perf record did not stop within 2 min: %s", p.out.String())
	}
	if st, err := os.Stat(p.path); err != nil || st.Size() == 0 {
		return fmt.Errorf("perf record wrote nothing: %s", p.out.String())
	}
	return nil
}

// profile is what a recording says: CPU weight by category, and by leaf
// symbol within each category (to check and refine the rules).
type profile struct {
	total float64
	cats  [numCategories]float64
	syms  [numCategories]map[string]float64
	// repl breaks replication down by the outermost replication function
	// and the category its leaf frames would have without the replication
	// rule.
	repl map[string]float64
}

func newProfile() *profile {
	p := &profile{repl: map[string]float64{}}
	for i := range p.syms {
		p.syms[i] = map[string]float64{}
	}
	return p
}

// analyze reads a recording with `perf script`.
func analyze(path string, redis bool) (*profile, error) {
	cmd := exec.Command("perf", "script", "-i", path, "-F", "comm,tid,period,ip,sym,dso", "--no-inline")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	prof := newProfile()
	perr := parseScript(out, func(period float64, frames []frame) { prof.add(period, frames, redis) })
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("perf script: %v: %s", err, stderr.String())
	}
	if perr != nil {
		return nil, perr
	}
	return prof, nil
}

func (p *profile) add(period float64, frames []frame, redis bool) {
	c := classify(frames, redis)
	p.total += period
	p.cats[c] += period
	leaf := "[unknown]"
	if len(frames) > 0 {
		leaf = frames[0].sym
	}
	p.syms[c][shortSym(leaf)] += period
	if c == catRepl {
		outer := ""
		for i := len(frames) - 1; i >= 0; i-- {
			if strings.HasPrefix(frames[i].sym, replPkg) {
				outer = shortSym(frames[i].sym)
				break
			}
		}
		// What the replication sample does: its own code if the leaf is
		// a replication frame, else the category of the frames below the
		// replication ones, by the same rules without the replication one.
		what := "replication's own code"
		if len(frames) > 0 && !strings.HasPrefix(frames[0].sym, replPkg) {
			var rest []frame
			for _, f := range frames {
				if strings.HasPrefix(f.sym, replPkg) {
					break
				}
				rest = append(rest, f)
			}
			what = classifyNoRepl(rest).String()
		}
		if outer == "" {
			outer = "(wire encoding)"
		}
		p.repl[outer+" / "+what] += period
	}
}

// classifyNoRepl classifies a replication sample's other frames.
func classifyNoRepl(frames []frame) category {
	for i, f := range frames {
		if generic[f.sym] {
			if isMemmove(f.sym) && i+1 < len(frames) && isCopyParent(frames[i+1:]) {
				return catCopy
			}
			continue
		}
		rules := goRules
		if f.kernel {
			rules = kernelRules
		}
		for _, r := range rules {
			if r.cat != catRepl && r.match(f.sym) {
				return r.cat
			}
		}
		if strings.HasPrefix(f.sym, wirePkg) {
			return catReply // encoding frames for peers: the wire codec
		}
	}
	return catOther
}

// shortSym drops the module path and generic shapes from a Go symbol.
func shortSym(s string) string {
	s = strings.ReplaceAll(s, "github.com/geocache/geocache/", "")
	s = strings.ReplaceAll(s, "github.com/geocache/geocache.", "geocache.")
	if i := strings.Index(s, "[go.shape"); i >= 0 {
		if j := strings.LastIndex(s, "]"); j > i {
			s = s[:i] + "[…]" + s[j+1:]
		}
	}
	return s
}

// parseScript reads `perf script -F comm,tid,period,ip,sym,dso` output:
// a header line per sample, then one line per frame, leaf first.
func parseScript(r io.Reader, fn func(period float64, frames []frame)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var frames []frame
	period := 0.0
	inSample := false
	flush := func() {
		if inSample {
			fn(period, frames)
		}
		frames, inSample = frames[:0], false
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			flush()
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				v = 1
			}
			period, inSample = v, true
			continue
		}
		t := strings.TrimSpace(line)
		_, rest, ok := strings.Cut(t, " ")
		if !ok {
			continue
		}
		dso := ""
		if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			rest, dso = rest[:i], rest[i+2:len(rest)-1]
		}
		if j := strings.LastIndex(rest, "+0x"); j > 0 {
			rest = rest[:j]
		}
		frames = append(frames, frame{sym: rest, kernel: strings.Contains(dso, "kernel")})
	}
	flush()
	return sc.Err()
}

// topSyms returns the n heaviest leaf symbols of category c, as "sym pct".
func (p *profile) topSyms(c category, n int) []string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range p.syms[c] {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%s %.1f%%", all[i].k, 100*all[i].v/p.total))
	}
	return out
}

// merge adds o to p, scaled by w (p's figures become CPU seconds when w is
// o's CPU seconds over its total weight).
func (p *profile) merge(o *profile, w float64) {
	p.total += o.total * w
	for i := range p.cats {
		p.cats[i] += o.cats[i] * w
		for k, v := range o.syms[i] {
			p.syms[i][k] += v * w
		}
	}
	for k, v := range o.repl {
		p.repl[k] += v * w
	}
}
