module github.com/rampartci/rampart/services/watcher

go 1.26.8
