package main

import "github.com/cubicle-dev/cubicle/internal/backend/local"

// runSandboxInit is `cubicle sandbox-init`, the first process of a sandbox
// made by the local backend; it is not meant to be run by hand.
func runSandboxInit(args []string) int {
	return local.InitMain(args)
}
