package pngenc

import (
	"bytes"
	"cmp"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/klauspost/compress/flate"
)

// strip is the cached result of one band of rows.
type strip struct {
	z     []byte // raw DEFLATE blocks, ending in a sync flush, never final
	adler uint32 // Adler-32 of the filtered rows
	n     int    // length of the filtered rows
	valid bool
}

// worker holds what one compressing goroutine reuses from frame to frame.
type worker struct {
	zw  *flate.Writer
	out sliceWriter
	row []byte // one filtered row
}

// sliceWriter appends to a byte slice.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

func newWorker(level int) (*worker, error) {
	w := &worker{}
	zw, err := flate.NewWriter(&w.out, level)
	if err != nil {
		return nil, err
	}
	w.zw = zw
	return w, nil
}

// encodeStrip filters rows [y0, y1) of f and compresses them with a fresh
// dictionary into s.
func (w *worker) encodeStrip(s *strip, f *Frame, y0, y1 int) error {
	n := 1 + 3*f.Width
	if cap(w.row) < n {
		w.row = make([]byte, n)
	}
	row := w.row[:n]
	s.valid = false // s.z's bytes are overwritten from here on
	w.out.b = s.z[:0]
	w.zw.Reset(&w.out)
	var up []byte
	adler, rowAdler := uint32(1), uint32(0)
	for y := y0; y < y1; y++ {
		cur := f.Pix[y*f.Stride:]
		// A row equal to an unfiltered row above filters to the same
		// bytes, which row still holds. Screens repeat rows a lot: blank
		// lines, window and page backgrounds.
		if up == nil || row[0] != filterNone || !bytes.Equal(cur[:4*f.Width], up[:4*f.Width]) {
			filterRow(row, cur, up, f.Width)
			rowAdler = adlerUpdate(1, row)
		}
		adler = adlerCombine(adler, rowAdler, n)
		if _, err := w.zw.Write(row); err != nil {
			return err
		}
		up = cur
	}
	// A sync flush ends the strip on a byte boundary with a non-final
	// empty stored block, so strips concatenate into one stream.
	if err := w.zw.Flush(); err != nil {
		return err
	}
	s.z, s.adler, s.n, s.valid = w.out.b, adler, n*(y1-y0), true
	w.out.b = nil
	return nil
}

// job is one strip to encode.
type job struct {
	i      int
	y0, y1 int
}

// runJobs encodes jobs on up to len(e.workers) goroutines, the calling one
// included, and returns when all are done.
func (e *Encoder) runJobs(f *Frame, jobs []job) error {
	n := min(len(e.workers), len(jobs))
	var (
		next atomic.Int64
		mu   sync.Mutex
		ferr error
		wg   sync.WaitGroup
	)
	work := func(w *worker) {
		defer func() {
			if r := recover(); r != nil {
				mu.Lock()
				ferr = cmp.Or(ferr, fmt.Errorf("pngenc: encode strip: %v: %w", r, desktop.ErrInternal))
				mu.Unlock()
			}
		}()
		for {
			k := int(next.Add(1)) - 1
			if k >= len(jobs) {
				return
			}
			j := jobs[k]
			if err := w.encodeStrip(&e.strips[j.i], f, j.y0, j.y1); err != nil {
				mu.Lock()
				ferr = cmp.Or(ferr, fmt.Errorf("pngenc: compress strip: %w", err))
				mu.Unlock()
				return
			}
		}
	}
	for _, w := range e.workers[1:n] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(e.workers[0])
	wg.Wait()
	return ferr
}
