package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// phaseSpec is a "run" order from the bench.
type phaseSpec struct {
	Name      string  `json:"name"`
	Mode      string  `json:"mode"` // "open" or "closed"
	Rate      float64 `json:"rate"`
	Duration  float64 `json:"duration"`
	LagEvery  int64   `json:"lag_every"`
	Results   string  `json:"results"`
	Drain     float64 `json:"drain"`      // seconds the open loop's backlog may take after the last slot
	ProbeWait float64 `json:"probe_wait"` // seconds to wait for the lag probes still running
}

// record is one line of the results file: a command (t "r") or a lag probe (t "lag").
type record struct {
	T        string  `json:"t"`
	Intended float64 `json:"intended,omitempty"`
	Start    float64 `json:"start,omitempty"`
	End      float64 `json:"end,omitempty"`
	Kind     string  `json:"kind,omitempty"`
	Status   int     `json:"status"`
	Position int64   `json:"position,omitempty"`
	Error    string  `json:"error,omitempty"`
	At       float64 `json:"at,omitempty"`
	Lag      float64 `json:"lag,omitempty"`
}

// phase is one measured run: its results file, its counters and its lag probes.
type phase struct {
	spec      phaseSpec
	gen       *generator
	pool      *pool
	mu        sync.Mutex
	out       *bufio.Writer
	file      *os.File
	closed    bool
	ok        atomic.Int64
	exhausted atomic.Int64
	notSent   atomic.Int64
	missing   atomic.Int64
	probing   atomic.Int64
	probes    sync.WaitGroup
	last      atomic.Int64
}

func (ph *phase) write(r record) {
	line, _ := json.Marshal(r)
	ph.mu.Lock()
	defer ph.mu.Unlock()
	if ph.closed {
		return
	}
	ph.out.Write(line)
	ph.out.WriteByte('\n')
}

func (ph *phase) flush() {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	if !ph.closed {
		ph.out.Flush()
	}
}

func (ph *phase) close() error {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	ph.closed = true
	if err := ph.out.Flush(); err != nil {
		return err
	}
	return ph.file.Close()
}

func (ph *phase) recordError(kind string, intended, start, end time.Time, status int, text string) {
	c := ph.gen.clock
	ph.write(record{T: "r", Intended: c.at(intended), Start: c.at(start), End: c.at(end), Kind: kind, Status: status, Error: text})
}

func (ph *phase) recordOK(kind string, intended, start, end time.Time, status int, agreementID string, position int64) {
	c := ph.gen.clock
	ph.write(record{T: "r", Intended: c.at(intended), Start: c.at(start), End: c.at(end), Kind: kind, Status: status, Position: position})
	for {
		last := ph.last.Load()
		if position <= last || ph.last.CompareAndSwap(last, position) {
			break
		}
	}
	n := ph.ok.Add(1)
	if ph.spec.LagEvery > 0 && n%ph.spec.LagEvery == 0 {
		// The bench polls projections.applied for this position (the db lag) ...
		ph.gen.emit(map[string]any{"ev": "sample", "position": position, "at": c.at(end)})
		// ... and the read-your-writes API is asked for it here (the http lag).
		ph.probes.Add(1)
		ph.probing.Add(1)
		go ph.probe(agreementID, position, end)
	}
}

// probe: GET /v1/agreements/{id}?min_position=<position> until it answers 200; the server
// waits up to 5 s per request, then answers 503.
func (ph *phase) probe(agreementID string, position int64, okAt time.Time) {
	defer ph.probes.Done()
	defer ph.probing.Add(-1)
	url := ph.gen.projections + "/v1/agreements/" + agreementID + "?min_position=" + strconv.FormatInt(position, 10)
	for attempt := 0; attempt < 6; attempt++ {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			break
		}
		req.Header.Set("Authorization", ph.gen.readAuth)
		resp, err := ph.gen.reader.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ph.write(record{T: "lag", At: ph.gen.clock.at(okAt), Lag: time.Since(okAt).Seconds()})
			return
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			break
		}
	}
	ph.missing.Add(1)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// openLoop releases one slot every 1/rate s whatever happens; a slot's latency runs from
// its due time, so waiting for a free worker counts (no coordinated omission).
func (ph *phase) openLoop() {
	g := ph.gen
	n := int(ph.spec.Rate * ph.spec.Duration)
	slots := make(chan time.Time, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range g.workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for due := range slots {
				if ctx.Err() != nil {
					ph.notSent.Add(1)
					return
				}
				if !w.one(ctx, due, ph) {
					ph.notSent.Add(1)
				}
			}
		}(w)
	}
	begin := time.Now()
	for k := 0; k < n; k++ {
		due := begin.Add(seconds(float64(k) / ph.spec.Rate))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		slots <- due
	}
	close(slots)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(seconds(ph.spec.Drain)):
		// The backlog cannot drain in time: cut it off; what is still queued is not sent.
		cancel()
		<-drained
	}
	ph.notSent.Add(int64(len(slots)))
}

// closedLoop: every worker sends its next command as soon as the last one answered.
func (ph *phase) closedLoop() {
	end := time.Now().Add(seconds(ph.spec.Duration))
	var wg sync.WaitGroup
	for _, w := range ph.gen.workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for now := time.Now(); now.Before(end); now = time.Now() {
				if !w.one(context.Background(), now, ph) {
					time.Sleep(5 * time.Millisecond) // the bench is topping the plan up
				}
			}
		}(w)
	}
	wg.Wait()
}

func (g *generator) runPhase(spec phaseSpec) {
	file, err := os.Create(spec.Results)
	if err != nil {
		g.emit(map[string]any{"ev": "error", "message": err.Error()})
		g.emit(map[string]any{"ev": "done", "name": spec.Name, "failed": true})
		return
	}
	ph := &phase{spec: spec, gen: g, pool: g.pool, file: file, out: bufio.NewWriterSize(file, 1<<20)}
	stopFlush := make(chan struct{})
	go func() {
		// The bench's progress line reads the file every 2 s.
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				ph.flush()
			case <-stopFlush:
				return
			}
		}
	}()
	started := time.Now()
	g.emit(map[string]any{"ev": "started", "name": spec.Name, "at": g.clock.at(started)})
	if spec.Mode == "open" {
		ph.openLoop()
	} else {
		ph.closedLoop()
	}
	g.emit(map[string]any{"ev": "finished", "name": spec.Name, "at": g.clock.at(time.Now())})
	waited := make(chan struct{})
	go func() { ph.probes.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(seconds(spec.ProbeWait)):
	}
	close(stopFlush)
	unfinished := ph.probing.Load()
	if err := ph.close(); err != nil {
		g.emit(map[string]any{"ev": "error", "message": err.Error()})
	}
	taken, remaining := g.pool.counts()
	g.emit(map[string]any{
		"ev": "done", "name": spec.Name, "started": g.clock.at(started),
		"not_sent": ph.notSent.Load(), "exhausted": ph.exhausted.Load(),
		"lag_missing": ph.missing.Load() + unfinished, "last_position": ph.last.Load(),
		"taken": taken, "remaining": remaining,
	})
}
