// Package progress draws the progress of long CLI work on a terminal: a
// count, a rate and, when the total is known, an ETA, on one line redrawn
// in place at most a few times a second. Written to anything but a
// terminal (a pipe, a file, a test's buffer) it draws nothing, so output
// meant for programs stays clean.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// redraw is the least time between two draws.
const redraw = 200 * time.Millisecond

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Bar is the progress of one piece of work counted in units (events,
// entries). The zero of a nil *Bar is a Bar that draws nothing.
type Bar struct {
	w     io.Writer
	label string
	unit  string
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	done  int64
	total int64 // 0: unknown
	what  string
	last  time.Time
	drawn bool
}

// New returns a Bar drawing on w when w is a terminal, nil (which draws
// nothing) otherwise. total is the expected count, 0 when unknown.
func New(w io.Writer, label, unit string, total int64) *Bar {
	if !IsTerminal(w) {
		return nil
	}
	return newBar(w, label, unit, total, time.Now)
}

// Force returns a Bar drawing on w whatever w is (for tests).
func Force(w io.Writer, label, unit string, total int64, now func() time.Time) *Bar {
	return newBar(w, label, unit, total, now)
}

func newBar(w io.Writer, label, unit string, total int64, now func() time.Time) *Bar {
	return &Bar{w: w, label: label, unit: unit, total: total, now: now, start: now()}
}

// Set records that done units are finished, of total (0 keeps the total
// known so far), and redraws when the last draw is old enough.
func (b *Bar) Set(done, total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	if total > 0 {
		b.total = total
	}
	if now := b.now(); now.Sub(b.last) >= redraw {
		b.last = now
		b.draw(now)
	}
}

// Add records n more units finished.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	done := b.done + n
	b.mu.Unlock()
	b.Set(done, 0)
}

// Step records that the work moved on to one more step, what it now waits
// for, and draws it at once: steps are few and slow.
func (b *Bar) Step(what string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done++
	b.what = what
	b.last = b.now()
	b.draw(b.last)
}

// Done clears the line, so what is printed next starts on a clean one.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
}

// Line is the text of the bar at now: "label: 1200/5000 events, 24%
// (400/s, ETA 9s)", without the total and ETA when the total is unknown, or
// "label: waiting for what (step 3 of 12, 1.2s)" once Step was called.
func (b *Bar) Line(now time.Time) string {
	if b.what != "" {
		return fmt.Sprintf("%s: waiting for %s (step %d of %d, %s)", b.label, b.what, b.done, max(b.done, b.total),
			now.Sub(b.start).Round(100*time.Millisecond))
	}
	elapsed := now.Sub(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	if b.total <= 0 {
		return fmt.Sprintf("%s: %d %s (%.0f/s)", b.label, b.done, b.unit, rate)
	}
	eta := "ETA --"
	if rate > 0 && b.done <= b.total {
		eta = "ETA " + (time.Duration(float64(b.total-b.done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("%s: %d/%d %s, %d%% (%.0f/s, %s)", b.label, b.done, b.total, b.unit, 100*b.done/b.total, rate, eta)
}

func (b *Bar) draw(now time.Time) {
	fmt.Fprint(b.w, "\r\033[K"+b.Line(now))
	b.drawn = true
}
