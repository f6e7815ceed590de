// Package spec holds the protobuf definitions of E2B's in-sandbox daemon
// (envd) and the Go code generated from them: the messages in process and
// filesystem, the Connect handlers and clients in processconnect and
// filesystemconnect. The generated code is committed; regenerate it with
// `go generate ./internal/envd/spec` (needs protoc, protoc-gen-go and
// protoc-gen-connect-go on the PATH).
package spec

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --connect-go_out=. --connect-go_opt=paths=source_relative process/process.proto filesystem/filesystem.proto
