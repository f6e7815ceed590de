package x11

import (
	"fmt"
	"sync"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// xgb keeps the decoders of extension events and errors in process-wide
// maps that every connection's reader goroutine reads without a lock, and
// each extension's Init writes them. Writing them again while another
// connection receives events is a data race, so they are written once per
// extension and event base; later connections only record the extension's
// opcode, which lives in the connection.
var (
	extMu    sync.Mutex
	extBases = map[string][2]byte{} // extension name -> first event, first error
)

// initExt sets up extension name on c's connection; init is the xgb
// package's Init, called only when the process-wide tables lack this
// extension at these event and error numbers.
func (c *Conn) initExt(name string, init func(*xgb.Conn) error) error {
	r, err := xproto.QueryExtension(c.xc, uint16(len(name)), name).Reply()
	if err != nil {
		return c.wrap("query extension "+name, err)
	}
	if !r.Present {
		return fmt.Errorf("x11: the X server has no %s extension: %w", name, desktop.ErrUnavailable)
	}
	base := [2]byte{r.FirstEvent, r.FirstError}
	extMu.Lock()
	defer extMu.Unlock()
	if b, ok := extBases[name]; ok && b == base {
		c.xc.ExtLock.Lock()
		c.xc.Extensions[name] = r.MajorOpcode
		c.xc.ExtLock.Unlock()
		return nil
	}
	if err := init(c.xc); err != nil {
		return err
	}
	extBases[name] = base
	return nil
}
