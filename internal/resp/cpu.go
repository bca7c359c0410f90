package resp

import (
	"strconv"
	"syscall"
	"time"
)

// processCPU returns the user and system CPU time the process has used.
func processCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// cpuSeconds formats d as Redis's INFO cpu does: seconds with six decimals.
func cpuSeconds(d time.Duration) string {
	us := d.Microseconds()
	frac := strconv.FormatInt(us%1_000_000, 10)
	for len(frac) < 6 {
		frac = "0" + frac
	}
	return strconv.FormatInt(us/1_000_000, 10) + "." + frac
}
