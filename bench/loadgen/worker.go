package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// How many lives one worker walks at once, in turn (as bench/workload.py's Lives does).
const activeLives = 4

// worker is one simulated client: one keep-alive connection, a rotation of lives.
type worker struct {
	http   *http.Client
	base   string
	active []*life
	turn   int
}

func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		Proxy:               nil, // loopback only: never an environment proxy
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: transport, Timeout: timeout}
}

// next is the life whose command goes next; a finished life is replaced from the pool.
func (w *worker) next(p *pool) *life {
	for len(w.active) < activeLives {
		l := p.take()
		if l == nil {
			break
		}
		w.active = append(w.active, l)
	}
	if len(w.active) == 0 {
		return nil
	}
	w.turn = (w.turn + 1) % len(w.active)
	if w.active[w.turn].done() {
		l := p.take()
		if l == nil {
			w.active = append(w.active[:w.turn], w.active[w.turn+1:]...)
			return w.next(p)
		}
		w.active[w.turn] = l
	}
	return w.active[w.turn]
}

type answer struct {
	AgreementID string `json:"agreement_id"`
	Position    *int64 `json:"position"`
}

// one sends the next command of one of the worker's lives. It returns false when the plan
// had no life left. A command cut off by the phase's end is not recorded (as in the
// Python generator): the server may still have done it, so its life is abandoned.
func (w *worker) one(ctx context.Context, intended time.Time, ph *phase) bool {
	l := w.next(ph.pool)
	if l == nil {
		ph.exhausted.Add(1)
		return false
	}
	st := &l.Steps[l.next]
	path := strings.ReplaceAll(st.Path, agreementPlaceholder, l.id)
	req, err := http.NewRequestWithContext(ctx, st.Method, w.base+path, bytes.NewReader(st.Body))
	if err != nil {
		ph.recordError(st.Kind, intended, time.Now(), time.Now(), 0, fmt.Sprintf("%s -> bad request: %v", st.Kind, err))
		l.abandon()
		return true
	}
	req.Header.Set("Authorization", l.auth)
	req.Header.Set("Content-Type", "application/json")
	if st.Key != "" {
		req.Header.Set("Idempotency-Key", st.Key)
	}
	start := time.Now()
	status := 0
	var body []byte
	resp, err := w.http.Do(req)
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	end := time.Now()
	if err != nil && ctx.Err() != nil {
		l.abandon()
		return true
	}
	if err != nil {
		ph.recordError(st.Kind, intended, start, end, 0, fmt.Sprintf("%s -> no answer: %s", st.Kind, shorten(err.Error(), 300)))
		l.abandon()
		return true
	}
	if status < 200 || status >= 300 {
		ph.recordError(st.Kind, intended, start, end, status, fmt.Sprintf("%s -> %d: %s", st.Kind, status, shorten(string(body), 300)))
		l.abandon()
		return true
	}
	var got answer
	if err := json.Unmarshal(body, &got); err != nil || got.AgreementID == "" || got.Position == nil {
		ph.recordError(st.Kind, intended, start, end, 0, fmt.Sprintf("%s -> %d without agreement_id/position: %s", st.Kind, status, shorten(string(body), 300)))
		l.abandon()
		return true
	}
	if st.Kind == "sign" {
		l.id = got.AgreementID
	}
	l.next++
	ph.recordOK(st.Kind, intended, start, end, status, got.AgreementID, *got.Position)
	return true
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
