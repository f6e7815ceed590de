module github.com/cubicle-dev/cubicle

go 1.26.8

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/jezek/xgb v1.1.1 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
