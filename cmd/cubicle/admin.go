package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/store"
	"github.com/cubicle-dev/cubicle/internal/template"
)

const keysUsage = `usage: cubicle keys create NAME | ls | revoke ID [--state-dir DIR]

Manages the server's API keys, in its database. A sandbox belongs to the
key's owner (NAME) that created it and is invisible to other owners.
`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage); fs.PrintDefaults() }
	var sf serveFlags
	sf.register(fs)
	verb, code, ok := parseVerb(fs, args)
	if !ok {
		return code
	}
	db := filepath.Join(sf.stateDir, "cubicle.db")
	if _, err := os.Stat(db); err != nil {
		fmt.Fprintf(stderr, "cubicle keys: no server state in %s (%v): is --state-dir the one `cubicle serve` uses? The first start of the server makes it\n", sf.stateDir, err)
		return 1
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle keys: %v (is --state-dir right? the server keeps its database there)\n", err)
		return 1
	}
	defer st.Close()
	keys := api.NewKeyManager(st)
	switch {
	case verb == "create" && fs.NArg() == 1:
		k, err := keys.Create(ctx, fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "cubicle keys create: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, k)
		fmt.Fprintf(stderr, "cubicle keys create: the same key for E2B's SDKs: E2B_API_KEY=%s\n", api.E2BKey(k))
	case verb == "ls" && fs.NArg() == 0:
		list, err := keys.List(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "cubicle keys ls: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tPREFIX\tCREATED\tREVOKED")
		for _, k := range list {
			revoked := ""
			if !k.Revoked.IsZero() {
				revoked = k.Revoked.Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Owner, k.Prefix, k.Created.Format("2006-01-02 15:04"), revoked)
		}
		tw.Flush()
	case verb == "revoke" && fs.NArg() == 1:
		if err := keys.Revoke(ctx, fs.Arg(0)); err != nil {
			fmt.Fprintf(stderr, "cubicle keys revoke: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
	default:
		fs.Usage()
		return 2
	}
	return 0
}

const templateUsage = `usage: cubicle template build [NAME] [-f RECIPE] | ls | rm NAME[@HASH] [--state-dir DIR]

Builds root filesystems for sandboxes with debootstrap from a declarative
recipe (JSON: Debian packages plus steps), cached by the recipe's hash.
NAME alone builds a built-in recipe (desktop); -f builds your own, which
may extend a built-in one with "from".
`

func runTemplate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("template", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, templateUsage); fs.PrintDefaults() }
	var sf serveFlags
	sf.register(fs)
	file := fs.String("f", "", "recipe file to build")
	verb, code, ok := parseVerb(fs, args)
	if !ok {
		return code
	}
	ts, err := sf.templates()
	if err != nil {
		fmt.Fprintf(stderr, "cubicle template: %v\n", err)
		return 1
	}
	switch {
	case verb == "build" && fs.NArg() <= 1:
		var rec *template.Recipe
		switch {
		case *file != "":
			rec, err = template.Load(*file)
		case fs.NArg() == 1:
			rec, err = template.Builtin(fs.Arg(0))
		default:
			rec, err = template.Builtin("desktop")
		}
		if err != nil {
			fmt.Fprintf(stderr, "cubicle template build: %v\n", err)
			return 1
		}
		t, err := ts.Build(ctx, rec, template.RenderProgress(stderr))
		if err != nil {
			fmt.Fprintf(stderr, "cubicle template build: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\t%d MB\t%s\n", t.Ref(), t.SizeBytes>>20, t.RootFS)
	case verb == "ls" && fs.NArg() == 0:
		list, err := ts.List()
		if err != nil {
			fmt.Fprintf(stderr, "cubicle template ls: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TEMPLATE\tCREATED\tSIZE\tPACKAGES")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d MB\t%d\n", t.Ref(), t.Created.Format("2006-01-02 15:04"), t.SizeBytes>>20, len(t.Packages))
		}
		tw.Flush()
	case verb == "rm" && fs.NArg() == 1:
		if err := ts.Remove(ctx, fs.Arg(0), nil); err != nil {
			fmt.Fprintf(stderr, "cubicle template rm: %v\n", err)
			return 1
		}
	default:
		fs.Usage()
		return 2
	}
	return 0
}
