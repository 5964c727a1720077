module github.com/rampartci/rampart/services/deployer

go 1.26.8
