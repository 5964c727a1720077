// Command deployer runs Rampart's deployer service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/deployer/app"
)

func main() {
	os.Exit(service.Main("deployer", nil, func(*slog.Logger) (service.Component, error) { return app.New(), nil }))
}
