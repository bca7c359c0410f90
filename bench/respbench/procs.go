package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errShuttingDown refuses a start once shutdown has begun (Ctrl-C).
var errShuttingDown = errors.New("shutting down")

// supervisor owns every process respbench starts and the temporary
// directory; shutdown ends them all and removes the directory.
type supervisor struct {
	tmp  string
	keep bool

	mu     sync.Mutex
	procs  map[*proc]bool
	closed bool
	once   sync.Once
}

// proc is one started process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string // "" if its output goes elsewhere
	done    chan struct{}
	err     error       // Wait's result, once done is closed
	asked   atomic.Bool // stop was requested (so an exit is not a crash)
}

func newSupervisor(keep bool) (*supervisor, error) {
	tmp, err := os.MkdirTemp("", "respbench-")
	if err != nil {
		return nil, err
	}
	return &supervisor{tmp: tmp, keep: keep, procs: map[*proc]bool{}}, nil
}

// start runs argv. Its output goes to the file logPath if not empty, else
// to stdout and stderr. Every child is in its own process group (a Ctrl-C
// in the terminal reaches respbench, which stops the children in order)
// and is killed if respbench dies (Pdeathsig).
func (s *supervisor) start(name, logPath string, stdout, stderr io.Writer, argv ...string) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errShuttingDown
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	var f *os.File
	if logPath != "" {
		var err error
		if f, err = os.Create(logPath); err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		cmd.Stdout, cmd.Stderr = stdout, stderr
	}
	if err := cmd.Start(); err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	s.procs[p] = true
	go func() {
		p.err = cmd.Wait()
		if f != nil {
			f.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// isClosed reports whether shutdown has begun.
func (s *supervisor) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// exited reports whether p has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pid is p's process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends p: SIGTERM, then SIGKILL after grace. early reports that p had
// already exited before it was asked to (a crash); err is Wait's result.
func (s *supervisor) stop(p *proc, grace time.Duration) (early bool, err error) {
	early = p.exited() && !p.asked.Load()
	p.asked.Store(true)
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("%s did not exit within %v of SIGTERM: killed", p.name, grace)
		}
	}
	s.forget(p)
	if err == nil {
		err = p.err
	}
	return early, err
}

// wait waits for p to exit by itself, killing it after timeout.
func (s *supervisor) wait(p *proc, timeout time.Duration) error {
	defer s.forget(p)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.asked.Store(true)
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s still running after %v: killed", p.name, timeout)
	}
}

func (s *supervisor) forget(p *proc) {
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
}

// shutdown stops every process still running (SIGTERM, SIGKILL after 5 s)
// and removes the temporary directory unless -keep. It is safe to call
// more than once and from several goroutines.
func (s *supervisor) shutdown() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		var ps []*proc
		for p := range s.procs {
			ps = append(ps, p)
		}
		s.mu.Unlock()
		for _, p := range ps {
			p.asked.Store(true)
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		deadline := time.After(5 * time.Second)
		for _, p := range ps {
			select {
			case <-p.done:
			case <-deadline:
				p.cmd.Process.Kill()
				<-p.done
			}
			fmt.Fprintf(os.Stderr, "respbench: stopped %s (pid %d)\n", p.name, p.pid())
		}
		if s.keep {
			fmt.Fprintf(os.Stderr, "respbench: logs kept in %s\n", s.tmp)
		} else {
			os.RemoveAll(s.tmp)
		}
	})
}

// machineBusy is the CPU time all processes of the machine have used so
// far (every state of the /proc/stat "cpu" line but idle and iowait).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	var busy int64
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}
