// Command deployer runs Rampart's deployer service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/deployer/app"
)

func main() {
	var opts app.Options
	os.Exit(service.Main("deployer", opts.BindFlags, func(*slog.Logger) (service.Component, error) {
		return app.New(opts)
	}))
}
