package client_test

import (
	"bytes"
	"errors"
	"image"
	_ "image/jpeg" // decode jpeg screenshots
	_ "image/png"  // decode png screenshots
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

// decodeSize decodes the header of an encoded picture and checks its format.
func decodeSize(t *testing.T, data []byte, format string) (w, h int) {
	t.Helper()
	cfg, f, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode %d bytes: %v", len(data), err)
	}
	if f != format {
		t.Errorf("picture is %s, want %s", f, format)
	}
	return cfg.Width, cfg.Height
}

func TestScreenshot(t *testing.T) {
	_, sb := start(t, clienttest.Options{Screen: desktop.Size{Width: 800, Height: 600}})
	ctx := t.Context()

	png, err := sb.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w, h := decodeSize(t, png, "png"); w != 800 || h != 600 {
		t.Errorf("Screenshot is %dx%d, want 800x600", w, h)
	}

	tests := []struct {
		name string
		opts desktop.ScreenshotOptions
		want desktop.Image // Data is not compared
	}{
		{"jpeg scaled", desktop.ScreenshotOptions{Format: "jpeg", Quality: 50, Width: 400},
			desktop.Image{Format: "jpeg", Width: 400, Height: 300}},
		{"region", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 100, Y: 100, Width: 200, Height: 100}, Cursor: true},
			desktop.Image{Format: "png", Width: 200, Height: 100}},
		{"region again", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 100, Y: 100, Width: 200, Height: 100}, Cursor: true},
			desktop.Image{Format: "png", Width: 200, Height: 100, Cached: true}},
		{"height only", desktop.ScreenshotOptions{Height: 150},
			desktop.Image{Format: "png", Width: 200, Height: 150}},
	}
	for _, tt := range tests {
		img, err := sb.ScreenshotWith(ctx, tt.opts)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		w, h := decodeSize(t, img.Data, tt.want.Format)
		if w != tt.want.Width || h != tt.want.Height {
			t.Errorf("%s: picture is %dx%d, want %dx%d", tt.name, w, h, tt.want.Width, tt.want.Height)
		}
		img.Data = nil
		if diff := cmp.Diff(tt.want, *img); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}

	// Anything that happens on the desktop ends the cache.
	opts := desktop.ScreenshotOptions{Width: 100}
	for i, want := range []bool{false, true} {
		img, err := sb.ScreenshotWith(ctx, opts)
		if err != nil || img.Cached != want {
			t.Errorf("screenshot %d: cached %v (%v), want %v", i, img != nil && img.Cached, err, want)
		}
	}
	if err := sb.MoveMouse(ctx, 1, 1); err != nil {
		t.Fatal(err)
	}
	if img, err := sb.ScreenshotWith(ctx, opts); err != nil || img.Cached {
		t.Errorf("screenshot after a move: %+v, %v; want it not cached", img, err)
	}

	// A region outside the screen is the agent's to reject.
	_, err = sb.ScreenshotWith(ctx, desktop.ScreenshotOptions{Region: &desktop.Rect{X: 700, Y: 0, Width: 200, Height: 10}})
	if desktop.CodeOf(err) != desktop.CodeOutOfBounds {
		t.Errorf("region outside the screen: error = %v, want out_of_bounds", err)
	}
}

func TestReadyNotReady(t *testing.T) {
	_, sb := start(t, clienttest.Options{NotReady: "xfdesktop is not mapped"})
	rd, err := sb.Ready(t.Context())
	if err != nil {
		t.Fatalf("Ready on a starting desktop: %v, want no error", err)
	}
	if rd.Ready || rd.Reason != "xfdesktop is not mapped" || len(rd.Parts) != 2 {
		t.Errorf("Ready = %+v, want not ready with the reason and the parts", rd)
	}
}

func TestReadyUnauthorized(t *testing.T) {
	a := clienttest.Start(t, clienttest.Options{Token: testToken, NotReady: "starting"})
	sb, err := client.ConnectAgent(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Ready(t.Context()); !isClass(err, client.ErrUnauthorized) {
		t.Errorf("Ready without a token: error = %v, want class ErrUnauthorized", err)
	}
	if _, err := sb.WaitReady(t.Context(), time.Minute); !isClass(err, client.ErrUnauthorized) {
		t.Errorf("WaitReady without a token: error = %v, want class ErrUnauthorized", err)
	}
}

func TestWaitReadyBecomesReady(t *testing.T) {
	a, sb := start(t, clienttest.Options{NotReady: "starting"})
	var (
		wg  sync.WaitGroup
		rd  desktop.Readiness
		err error
	)
	wg.Go(func() { rd, err = sb.WaitReady(t.Context(), time.Minute) })
	// Once the request is waiting on the agent, the desktop comes up.
	for deadline := time.Now().Add(30 * time.Second); len(a.Requests()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("WaitReady sent no request in 30s")
		}
		time.Sleep(time.Millisecond)
	}
	a.SetReady(true, "")
	wg.Wait()
	if err != nil || !rd.Ready || rd.Screen == nil {
		t.Errorf("WaitReady = %+v, %v; want ready with the screen size", rd, err)
	}
	if reqs := a.Requests(); len(reqs) != 1 || reqs[0].Query.Get("wait") != "1m0s" {
		t.Errorf("WaitReady sent %v, want one GET /v1/ready?wait=1m0s", reqs)
	}
}

func TestWaitReadyTimesOut(t *testing.T) {
	_, sb := start(t, clienttest.Options{NotReady: "the panel is not mapped"})
	rd, err := sb.WaitReady(t.Context(), 100*time.Millisecond)
	if !isClass(err, client.ErrTimeout) {
		t.Fatalf("error = %v, want class ErrTimeout", err)
	}
	if want := "the desktop is not ready after 100ms: the panel is not mapped"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if rd.Ready || rd.Reason != "the panel is not mapped" {
		t.Errorf("readiness = %+v, want the last one seen", rd)
	}
}

func TestWaitReadyAgentDown(t *testing.T) {
	sb, err := client.ConnectAgent(freeURL(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sb.WaitReady(t.Context(), 200*time.Millisecond)
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("error = %v, want classes ErrTimeout and ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "agent unreachable") {
		t.Errorf("error %q does not say the agent is unreachable", err)
	}
}
