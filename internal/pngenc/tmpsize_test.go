package pngenc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTmpSizes(t *testing.T) {
	if os.Getenv("PNGENC_SIZES") == "" {
		t.Skip()
	}
	for _, p := range strings.Split(os.Getenv("PNGENC_SIZES"), ",") {
		abs, _ := filepath.Abs(p)
		f := loadFrame(t, "../"+strings.Repeat("../", 20)+abs)
		out, err := New(Options{}).Encode(nil, f, nil)
		if err != nil {
			t.Fatal(err)
		}
		flat, all := 0, 0
		d := make([]byte, 1+3*f.Width)
		for y := range f.Height {
			all++
			filterRow(d, f.Pix[y*f.Stride:], nil, f.Width)
			if d[0] == 0 {
				flat++
			}
		}
		t.Logf("%s: %d bytes, %d/%d rows unfiltered", filepath.Base(p), len(out), flat, all)
	}
}

func TestTmpRepeats(t *testing.T) {
	if os.Getenv("PNGENC_SIZES") == "" {
		t.Skip()
	}
	for _, p := range strings.Split(os.Getenv("PNGENC_SIZES"), ",") {
		abs, _ := filepath.Abs(p)
		f := loadFrame(t, "../"+strings.Repeat("../", 20)+abs)
		rep, uni := 0, 0
		for y := 1; y < f.Height; y++ {
			a := f.Pix[y*f.Stride : y*f.Stride+4*f.Width]
			b := f.Pix[(y-1)*f.Stride : (y-1)*f.Stride+4*f.Width]
			same := true
			for x := 0; x < f.Width; x++ {
				if a[4*x] != b[4*x] || a[4*x+1] != b[4*x+1] || a[4*x+2] != b[4*x+2] {
					same = false
					break
				}
			}
			if same {
				rep++
			}
			u := true
			for x := 1; x < f.Width; x++ {
				if a[4*x] != a[0] || a[4*x+1] != a[1] || a[4*x+2] != a[2] {
					u = false
					break
				}
			}
			if u {
				uni++
			}
		}
		t.Logf("%s: %d rows repeat the row above, %d uniform", filepath.Base(p), rep, uni)
	}
}
