package controller

import (
	"sync"
	"time"
)

// ExpectationsTTL is how long unobserved expectations hold a controller
// back before it resyncs anyway (a lost watch event must not wedge it).
const ExpectationsTTL = 5 * time.Minute

// Expectations counts, per controller key, the creates and deletes a
// controller has issued but not yet seen in its informer cache. A
// controller acts on a key only when Satisfied: otherwise its cache is
// behind its own writes and acting again would create or delete twice.
// Safe for concurrent use.
type Expectations struct {
	mu  sync.Mutex
	m   map[string]*expectation
	now func() time.Time
}

type expectation struct {
	adds, dels int
	at         time.Time
}

// NewExpectations returns empty expectations.
func NewExpectations() *Expectations {
	return &Expectations{m: map[string]*expectation{}, now: time.Now}
}

// Expect records that adds creates and dels deletes are about to be issued
// for key, replacing what was expected before.
func (e *Expectations) Expect(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{adds: adds, dels: dels, at: e.now()}
}

// CreationObserved lowers key's expected creates by one (also used when a
// create failed and will therefore never be observed).
func (e *Expectations) CreationObserved(key string) { e.lower(key, 1, 0) }

// DeletionObserved lowers key's expected deletes by one.
func (e *Expectations) DeletionObserved(key string) { e.lower(key, 0, 1) }

func (e *Expectations) lower(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds -= adds
		x.dels -= dels
	}
}

// Satisfied reports whether key has nothing outstanding (or its
// expectations are older than ExpectationsTTL).
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return (x.adds <= 0 && x.dels <= 0) || e.now().Sub(x.at) > ExpectationsTTL
}

// Delete forgets key (its owner is gone).
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
