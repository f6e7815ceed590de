package display

import (
	"context"

	procs "github.com/cubicle-dev/cubicle/internal/proc"
)

// tag is the environment entry that marks the processes of desktop id.
func tag(id string) string { return TagEnv + "=" + id }

// taggedPIDs returns the processes whose environment carries the tag of
// desktop id, other than this one.
func taggedPIDs(id string) []int { return procs.Tagged(tag(id)) }

// killTagged ends every process of desktop id, daemons the session
// re-parented away from us included.
func killTagged(ctx context.Context, id string) error { return procs.KillTagged(ctx, tag(id)) }
