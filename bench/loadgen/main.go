// Command loadgen is the bench's HTTP load generator (bench/loadgen.py builds and drives it).
//
// Python plans, Go executes. The bench writes the agreement lives as JSON lines (each life's
// token and ordered steps, body bytes verbatim) and sends orders on stdin, one JSON object a
// line:
//
//	{"op":"config","registry":URL,"projections":URL,"clients":N,"read_token":T,"timeout":30}
//	{"op":"plan","file":PATH,"low":N}      add lives; say "low" when fewer than N are left
//	{"op":"run","name":..,"mode":"open"|"closed","rate":R,"duration":S,"lag_every":N,
//	 "results":PATH,"drain":S,"probe_wait":S}
//	{"op":"quit"}
//
// It answers on stdout, one JSON object a line ("ev": planned, low, started, sample,
// finished, done, error), and writes one record per command and per lag probe to the
// phase's results file. Keep-alive connections (one per client) and the lives in progress
// carry over from phase to phase, as they did in the Python generator.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

type order struct {
	Op          string  `json:"op"`
	Registry    string  `json:"registry"`
	Projections string  `json:"projections"`
	Clients     int     `json:"clients"`
	ReadToken   string  `json:"read_token"`
	Timeout     float64 `json:"timeout"`
	File        string  `json:"file"`
	Low         int     `json:"low"`
	phaseSpec
}

type generator struct {
	clock       clock
	pool        *pool
	workers     []*worker
	reader      *http.Client
	readAuth    string
	projections string
	outMu       sync.Mutex
	out         *bufio.Writer
}

func (g *generator) emit(event map[string]any) {
	line, err := json.Marshal(event)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"ev":"error","message":%q}`, err.Error()))
	}
	g.outMu.Lock()
	defer g.outMu.Unlock()
	g.out.Write(line)
	g.out.WriteByte('\n')
	g.out.Flush()
}

func (g *generator) configure(o order) error {
	if o.Clients <= 0 || o.Registry == "" || o.Projections == "" {
		return fmt.Errorf("config needs registry, projections and clients > 0")
	}
	timeout := seconds(o.Timeout)
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	g.workers = make([]*worker, o.Clients)
	for i := range g.workers {
		// One client, one connection: a worker's requests never queue behind another's.
		g.workers[i] = &worker{http: newHTTPClient(1, timeout), base: o.Registry}
	}
	g.reader = newHTTPClient(64, timeout)
	g.readAuth = "Bearer " + o.ReadToken
	g.projections = o.Projections
	return nil
}

func main() {
	g := &generator{clock: newClock(), pool: &pool{}, out: bufio.NewWriter(os.Stdout)}
	g.pool.onLow = func(remaining int) { g.emit(map[string]any{"ev": "low", "remaining": remaining}) }
	var running sync.WaitGroup
	busy := false
	var busyMu sync.Mutex
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for scanner.Scan() {
		var o order
		if err := json.Unmarshal(scanner.Bytes(), &o); err != nil {
			g.emit(map[string]any{"ev": "error", "message": "bad order: " + err.Error()})
			continue
		}
		switch o.Op {
		case "config":
			if err := g.configure(o); err != nil {
				g.emit(map[string]any{"ev": "error", "message": err.Error()})
				os.Exit(2)
			}
			g.emit(map[string]any{"ev": "configured", "clients": len(g.workers)})
		case "plan":
			// Plans may arrive while a phase runs (a top-up after "low").
			// Every plan order is answered with "planned", failed or not.
			added, err := g.pool.load(o.File, o.Low)
			_, remaining := g.pool.counts()
			answer := map[string]any{"ev": "planned", "lives": added, "remaining": remaining}
			if err != nil {
				answer["error"] = err.Error()
			}
			g.emit(answer)
		case "run":
			busyMu.Lock()
			if busy || g.workers == nil {
				busyMu.Unlock()
				g.emit(map[string]any{"ev": "error", "message": "run refused: a phase is running or no config yet"})
				g.emit(map[string]any{"ev": "done", "name": o.Name, "failed": true})
				continue
			}
			busy = true
			busyMu.Unlock()
			running.Add(1)
			go func(spec phaseSpec) {
				defer running.Done()
				g.runPhase(spec)
				busyMu.Lock()
				busy = false
				busyMu.Unlock()
			}(o.phaseSpec)
		case "quit":
			running.Wait()
			return
		default:
			g.emit(map[string]any{"ev": "error", "message": "unknown op " + o.Op})
		}
	}
	running.Wait()
}
