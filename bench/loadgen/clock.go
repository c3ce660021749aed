package main

import (
	"syscall"
	"time"
	"unsafe"
)

// clock turns Go times into CLOCK_MONOTONIC seconds: the clock behind Python's
// time.perf_counter on Linux, so the bench can set these times beside its own readings
// (its epoch, the db-lag poll) without converting.
type clock struct {
	wall time.Time
	mono float64
}

const clockMonotonic = 1

func newClock() clock {
	var ts syscall.Timespec
	now := time.Now()
	// Read once; Go's own monotonic clock is the same CLOCK_MONOTONIC, so differences from
	// `now` stay exact for the life of the process.
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic("clock_gettime(CLOCK_MONOTONIC): " + errno.Error())
	}
	return clock{wall: now, mono: float64(ts.Sec) + float64(ts.Nsec)/1e9}
}

func (c clock) at(t time.Time) float64 {
	return c.mono + t.Sub(c.wall).Seconds()
}
