module github.com/rampartci/rampart/services/notifier

go 1.26.8
