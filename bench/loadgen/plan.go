package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// The placeholder a step's path carries until the signing's answer names the agreement.
const agreementPlaceholder = "{agreement_id}"

// step is one command of a planned life, exactly as Python wrote it: the body's bytes are
// sent untouched (json.RawMessage keeps them verbatim).
type step struct {
	Kind   string          `json:"kind"`
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body"`
	Key    string          `json:"key,omitempty"`
}

// life is one agreement's ordered commands, walked by one worker at a time.
type life struct {
	Token string `json:"token"`
	Steps []step `json:"steps"`
	auth  string
	next  int
	id    string
}

func (l *life) done() bool { return l.next >= len(l.Steps) }

// abandon drops the rest of a life: after an error its agreement's state is unknown.
func (l *life) abandon() { l.next = len(l.Steps) }

// pool hands out planned lives in plan order to whichever worker needs a new one.
type pool struct {
	mu     sync.Mutex
	lives  []*life
	taken  int
	low    int
	warned bool
	onLow  func(remaining int)
}

// load appends the lives of a plan file (JSON lines, one life each).
func (p *pool) load(path string, low int) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var added []*life
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; scanner.Scan(); n++ {
		l := &life{}
		if err := json.Unmarshal(scanner.Bytes(), l); err != nil {
			return 0, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if len(l.Steps) == 0 {
			return 0, fmt.Errorf("%s line %d: a life without steps", path, n)
		}
		l.auth = "Bearer " + l.Token
		added = append(added, l)
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lives = append(p.lives, added...)
	p.low = low
	p.warned = false
	return len(added), nil
}

// take returns the next unstarted life, or nil when the plan is used up.
func (p *pool) take() *life {
	p.mu.Lock()
	if p.taken >= len(p.lives) {
		p.mu.Unlock()
		return nil
	}
	l := p.lives[p.taken]
	p.lives[p.taken] = nil // the pool no longer needs it once a worker has it
	p.taken++
	remaining := len(p.lives) - p.taken
	warn := !p.warned && remaining < p.low
	if warn {
		p.warned = true
	}
	p.mu.Unlock()
	if warn && p.onLow != nil {
		p.onLow(remaining)
	}
	return l
}

func (p *pool) counts() (taken, remaining int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.taken, len(p.lives) - p.taken
}
