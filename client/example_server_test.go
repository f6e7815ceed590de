package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Create a sandbox on a server, run a command in it, copy a file in and
// drive its desktop, then kill it.
func ExampleServer_Create() {
	ctx := context.Background()
	srv, err := client.New("http://127.0.0.1:8080", os.Getenv("CUBICLE_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	sb, err := srv.Create(ctx, client.CreateOptions{
		Resolution: desktop.Size{Width: 1280, Height: 800},
		Timeout:    10 * time.Minute,
		Metadata:   map[string]string{"job": "demo"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Kill(context.WithoutCancel(ctx))

	res, err := sb.Commands.Run(ctx, "uname -a && echo $DISPLAY")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)

	if _, err := sb.Files.Write(ctx, "~/hello.txt", []byte("hello\n")); err != nil {
		log.Fatal(err)
	}
	if err := sb.LeftClick(ctx, 640, 400); err != nil { // the desktop methods go through the server
		log.Fatal(err)
	}
}

// Tell a failing command from a failed call.
func ExampleCommandExitError() {
	ctx := context.Background()
	sb, err := client.ConnectAgent("http://127.0.0.1:49983")
	if err != nil {
		log.Fatal(err)
	}
	_, err = sb.Commands.RunArgv(ctx, []string{"grep", "-q", "needle", "/etc/hostname"})
	var ee *client.CommandExitError
	switch {
	case errors.As(err, &ee):
		fmt.Println("grep ran and exited with", ee.Result.ExitCode)
	case err != nil:
		log.Fatal(err) // the agent could not run it
	}
}

// Run a server in the background, feed it input and stream its output.
func ExampleCommands_Start() {
	ctx := context.Background()
	sb, err := client.ConnectAgent("http://127.0.0.1:49983")
	if err != nil {
		log.Fatal(err)
	}
	h, err := sb.Commands.Start(ctx, "while read l; do echo \"got $l\"; done", client.CommandOptions{
		Stdin:    true,
		Timeout:  client.NoTimeout,
		OnStdout: func(b []byte) { fmt.Print(strings.ToUpper(string(b))) },
	})
	if err != nil {
		log.Fatal(err)
	}
	h.SendStdin(ctx, []byte("one\ntwo\n"))
	h.CloseStdin(ctx)
	if _, err := h.Wait(ctx); err != nil {
		log.Fatal(err)
	}
}

// Page through the sandboxes labelled job=demo.
func ExampleServer_All() {
	ctx := context.Background()
	srv, err := client.New("http://127.0.0.1:8080", os.Getenv("CUBICLE_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	for sb, err := range srv.All(ctx, client.ListOptions{Metadata: map[string]string{"job": "demo"}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(sb.ID, sb.State, sb.EndAt)
	}
}
