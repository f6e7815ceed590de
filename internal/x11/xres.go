package x11

import (
	"context"
	"fmt"

	"github.com/jezek/xgb/res"
)

// ClientCount is the number of clients connected to the X server
// (X-Resource), used to check that nothing leaks connections.
func (c *Conn) ClientCount(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("x11: client count: %w", err)
	}
	if c.in.resErr != nil {
		return 0, c.in.resErr
	}
	r, err := res.QueryClients(c.xc).Reply()
	if err != nil {
		return 0, c.wrap("client count", err)
	}
	return int(r.NumClients), nil
}
