module github.com/rampartci/rampart/pkg/runtime

go 1.26.8
