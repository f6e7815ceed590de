package cli

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

func setupView(fs *flag.FlagSet) func(*cmd, []string) error {
	control := fs.Bool("control", false, "let the viewer use the mouse and keyboard (default: view only)")
	ttl := fs.Duration("ttl", 0, "how long the URL works (default the server's, 1h)")
	resize := fs.String("resize", client.ResizeScale, "off or scale")
	window := fs.String("window", "", "show only the window with this `ID` (see windows)")
	return func(c *cmd, args []string) error {
		if len(args) != 1 {
			return usagef("takes one sandbox ID, got %d arguments", len(args))
		}
		switch *resize {
		case client.ResizeOff, client.ResizeScale:
		default:
			return usagef("--resize takes off or scale, got %q", *resize)
		}
		if *ttl < 0 {
			return usagef("--ttl %v is negative", *ttl)
		}
		var win uint32
		if *window != "" {
			n, err := strconv.ParseUint(*window, 0, 32)
			if err != nil || n == 0 {
				return usagef("--window %q is not a window ID such as 0x1e00004", *window)
			}
			win = uint32(n)
		}
		sb, err := c.connect(args[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		u, err := sb.StreamURL(ctx, client.StreamURLOptions{ViewOnly: !*control, TTL: *ttl, Resize: *resize, Window: win})
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(map[string]any{"url": u.URL, "websocket_url": u.WebSocketURL, "token_id": u.TokenID,
				"view_only": u.ViewOnly, "expires_at": u.ExpiresAt.Format(time.RFC3339)})
		}
		fmt.Fprintln(c.stdout, u.URL)
		return nil
	}
}
