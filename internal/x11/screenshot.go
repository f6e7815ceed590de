package x11

import (
	"context"
	"fmt"

	"github.com/jezek/xgb/xfixes"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/pngenc"
)

// maxEntries is how many distinct screenshot shapes keep their encoder and
// last encoding.
const maxEntries = 4

// shotKey is what makes two screenshots the same shape.
type shotKey struct {
	format  string
	quality int
	region  desktop.Rect // the part of the screen, in screen pixels
	w, h    int          // output size
	cursor  bool
}

// shotEntry is the state kept for one screenshot shape: the encoder with
// its strip cache, the scaler's output, and the last encoding.
type shotEntry struct {
	key  shotKey
	used uint64
	// pending holds the screen rows drawn since this shape was last
	// encoded. A new entry has every row pending.
	pending rowSet
	// fresh is true until the first encoding: the encoder has nothing to
	// reuse yet.
	fresh bool
	data  []byte // the last encoding

	png    *pngenc.Encoder
	scale  *scaler
	jpeg   jpegBuffers
	cursor cursorMark // the pointer as last drawn in, when key.cursor
}

// screenshot is Screenshot.
//
// What changed since the previous screenshot is decided like this, so that
// nothing is ever missed: the report of drawing done before a capture may
// still be on its way from the server. So first Sync, after which every
// report the server sent before the barrier has been handled; then take and
// clear the dirty rows; only then grab the pixels. Drawing that lands
// between the take and the grab may or may not be in this image, but its
// report arrives later and marks those rows dirty for next time: at worst
// they are read and encoded once more, and nothing is ever missed.
func (c *Conn) screenshot(ctx context.Context, opts desktop.ScreenshotOptions) (*desktop.Image, error) {
	cs := c.cap
	// Both replies travel with the barrier: no extra round trip.
	geo := xproto.GetGeometry(c.xc, xproto.Drawable(c.root))
	var cur xfixes.GetCursorImageCookie
	if opts.Cursor && cs.xfixes {
		cur = xfixes.GetCursorImage(c.xc)
	}
	if err := c.Sync(ctx); err != nil {
		return nil, err
	}
	g, err := geo.Reply()
	if err != nil {
		return nil, c.wrap("get screen geometry", err)
	}
	sw, sh := int(g.Width), int(g.Height)
	if err := opts.Validate(desktop.Size{Width: sw, Height: sh}); err != nil {
		return nil, err
	}
	var pointer *xfixes.GetCursorImageReply
	if cur.Cookie != nil {
		if pointer, err = cur.Reply(); err != nil {
			return nil, c.wrap("get cursor image", err)
		}
	}

	cs.mu.Lock()
	defer cs.mu.Unlock()
	if err := c.prepare(sw, sh); err != nil {
		return nil, err
	}
	cs.collect()

	key := keyOf(opts, sw, sh)
	e := cs.entry(key)
	r := key.region
	if pointer != nil {
		m := markOf(pointer)
		if m != e.cursor {
			// Where the pointer was and where it is now must be redrawn.
			e.pending.addRange(e.cursor.y, e.cursor.y+e.cursor.h)
			e.pending.addRange(m.y, m.y+m.h)
			e.cursor = m
		}
	}
	if !e.fresh && !e.pending.any(r.Y, r.Y+r.Height) {
		return &desktop.Image{Format: key.format, Width: key.w, Height: key.h, Data: e.data, Cached: true}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("x11: screenshot: %w", err)
	}
	if err := c.grab(); err != nil {
		return nil, err
	}
	stride := cs.width * 4
	if pointer != nil {
		// Drawn into the frame itself: those rows no longer show the
		// screen, so the next grab reads them again.
		drawCursor(cs.frame, stride, cs.width, cs.height, pointer)
		cs.stale.addRange(e.cursor.y, e.cursor.y+e.cursor.h)
	}
	// The region is a view into the frame: same stride, no copy.
	f := pngenc.Frame{
		Pix:    cs.frame[r.Y*stride+r.X*4:],
		Stride: stride,
		Width:  r.Width,
		Height: r.Height,
	}
	// dirty says whether output rows [y0, y1) must be encoded again.
	dirty := func(y0, y1 int) bool { return e.pending.any(r.Y+y0, r.Y+y1) }
	if key.w != r.Width || key.h != r.Height {
		if e.scale == nil {
			e.scale = newScaler(r.Width, r.Height, key.w, key.h)
		}
		var rowDirty func(y0, y1 int) bool
		if !e.fresh {
			rowDirty = dirty
		}
		f = e.scale.scale(f, rowDirty)
		dirty = func(y0, y1 int) bool {
			s0, s1 := e.scale.sourceRows(y0, y1)
			return e.pending.any(r.Y+s0, r.Y+s1)
		}
	}
	if e.fresh {
		dirty = nil
	}

	var data []byte
	switch key.format {
	case "jpeg":
		data, err = e.jpeg.encode(f, key.quality)
	default:
		if e.png == nil {
			e.png = pngenc.New(pngenc.Options{})
		}
		// A fresh slice each time: callers may hold the previous one.
		data, err = e.png.Encode(make([]byte, 0, len(e.data)+len(e.data)/4), f, dirty)
	}
	if err != nil {
		cs.drop(e)
		return nil, fmt.Errorf("x11: encode %s: %w", key.format, err)
	}
	e.pending.clearAll()
	e.fresh = false
	e.data = data
	return &desktop.Image{Format: key.format, Width: key.w, Height: key.h, Data: data}, nil
}

// keyOf resolves opts, already validated, against a screen of sw x sh.
func keyOf(opts desktop.ScreenshotOptions, sw, sh int) shotKey {
	k := shotKey{format: opts.Format, cursor: opts.Cursor}
	if k.format == "" {
		k.format = "png"
	}
	if k.format == "jpeg" {
		k.quality = opts.Quality
		if k.quality == 0 {
			k.quality = 80
		}
	}
	k.region = desktop.Rect{Width: sw, Height: sh}
	if opts.Region != nil {
		k.region = *opts.Region
	}
	k.w, k.h = outputSize(k.region.Width, k.region.Height, opts.Width, opts.Height)
	return k
}

// outputSize is the size of a w x h picture scaled to ow x oh; a zero side
// follows the aspect ratio, both zero keep the size.
func outputSize(w, h, ow, oh int) (int, int) {
	switch {
	case ow == 0 && oh == 0:
		return w, h
	case oh == 0:
		oh = max(1, (ow*h+w/2)/w)
	case ow == 0:
		ow = max(1, (oh*w+h/2)/h)
	}
	return ow, oh
}

// entry returns the entry for key, making one, and evicting the least
// recently used, when needed. cs.mu is held.
func (cs *captureState) entry(key shotKey) *shotEntry {
	cs.useTick++
	for _, e := range cs.entries {
		if e.key == key {
			e.used = cs.useTick
			return e
		}
	}
	e := &shotEntry{key: key, used: cs.useTick, fresh: true}
	e.pending.reset(cs.height)
	e.pending.addAll()
	if len(cs.entries) < maxEntries {
		cs.entries = append(cs.entries, e)
		return e
	}
	oldest := 0
	for i, o := range cs.entries {
		if o.used < cs.entries[oldest].used {
			oldest = i
		}
	}
	cs.entries[oldest] = e
	return e
}

// drop forgets e, after a failed encoding. cs.mu is held.
func (cs *captureState) drop(e *shotEntry) {
	for i, o := range cs.entries {
		if o == e {
			cs.entries = append(cs.entries[:i], cs.entries[i+1:]...)
			return
		}
	}
}
