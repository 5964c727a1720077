module github.com/rampartci/rampart/services/scanner

go 1.26.8
