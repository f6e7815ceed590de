// Package template builds and stores sandbox templates: root filesystems
// made by debootstrap from a declarative recipe, then customised by the
// recipe's steps in a chroot.
//
// A recipe is JSON (see Recipe). It names a Debian suite, a mirror, a
// debootstrap variant, the packages to install, steps to run (shell commands
// run as root in the new root, like a Dockerfile's RUN, and files to write),
// the desktop user to create and the environment sandboxes start with. A
// recipe may extend a built-in one with "from": its packages and steps are
// appended to those of the base.
//
// A Store keeps built templates under one directory:
//
//	<dir>/<name>/<hash>/rootfs     the root filesystem, owned by root
//	<dir>/<name>/<hash>/meta.json  what was built, when, how large, which packages
//	<dir>/<name>/<hash>/build.log  the output of debootstrap and of every step
//
// The hash covers the recipe and the builder's version, so a build is
// reused until either changes. A build happens in a temporary directory
// next to its final place and is renamed into place only once complete;
// a failed or cancelled build leaves nothing behind. Building runs as root:
// debootstrap and the recipe's steps run with full privileges on the host,
// so only build recipes you trust.
package template
