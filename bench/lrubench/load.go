package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loadMeter measures how much CPU other processes used while it ran: busy CPU
// time of the whole machine (/proc/stat) minus this process's own CPU time
// (getrusage). On a 2-core machine anything else running skews the numbers,
// so every table says how much else ran.
type loadMeter struct {
	wall        time.Time
	busy, owned time.Duration
	ok          bool
}

func startLoad() loadMeter {
	busy, ok := machineBusy()
	return loadMeter{wall: time.Now(), busy: busy, owned: selfCPU(), ok: ok}
}

// String reports the other processes' average use in cores.
func (m loadMeter) String() string {
	busy, ok := machineBusy()
	if !ok || !m.ok {
		return "other load: unknown"
	}
	wall := time.Since(m.wall)
	other := (busy - m.busy) - (selfCPU() - m.owned)
	return fmt.Sprintf("other processes used %.2f cores on average", max(0, other.Seconds()/wall.Seconds()))
}

// machineBusy returns the non-idle CPU time of all CPUs from /proc/stat.
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, s := range f[1:8] { // user nice system idle iowait irq softirq
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 {
			busy += v
		}
	}
	const userHZ = 100 // USER_HZ is 100 on every Linux architecture Go supports
	return time.Duration(busy) * time.Second / userHZ, true
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
