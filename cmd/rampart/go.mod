module github.com/rampartci/rampart/cmd/rampart

go 1.26.8
