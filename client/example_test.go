package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Connect to an agent, wait for its desktop, click, type and take a
// screenshot.
func Example() {
	ctx := context.Background()
	sb, err := client.ConnectAgent("http://127.0.0.1:49983", client.WithToken(os.Getenv("CUBICLE_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()

	if _, err := sb.WaitReady(ctx, time.Minute); err != nil {
		log.Fatal(err)
	}
	if _, err := sb.Launch(ctx, "xfce4-terminal"); err != nil {
		log.Fatal(err)
	}
	if err := sb.LeftClick(ctx, 400, 300); err != nil {
		log.Fatal(err)
	}
	if err := sb.Write(ctx, "echo hello\n"); err != nil {
		log.Fatal(err)
	}
	if err := sb.Press(ctx, "ctrl+l"); err != nil {
		log.Fatal(err)
	}
	png, err := sb.Screenshot(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("screen.png", png, 0o644); err != nil {
		log.Fatal(err)
	}
}

// Run several actions in one round trip and find out which one failed.
func ExampleSandbox_Do() {
	ctx := context.Background()
	sb, err := client.ConnectAgent("http://127.0.0.1:49983")
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()

	res, err := sb.Do(ctx,
		desktop.Action{Type: desktop.Click}.At(100, 40),
		desktop.Action{Type: desktop.Type, Text: "https://example.com\n"},
		desktop.Action{Type: desktop.Key, Keys: []string{"ctrl", "t"}},
	)
	var de *desktop.Error
	switch {
	case errors.As(err, &de) && errors.Is(err, client.ErrInvalid):
		fmt.Printf("action %d is wrong (%s): %s\n", de.Index, de.Code, de.Message)
	case err != nil:
		log.Fatal(err)
	}
	if res != nil {
		fmt.Printf("%d actions ran\n", res.Completed)
	}
}
