// Command watcher runs Rampart's watcher service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/watcher/app"
)

func main() {
	opts := app.DefaultOptions()
	os.Exit(service.Main("watcher", opts.BindFlags, func(*slog.Logger) (service.Component, error) {
		return app.New(opts)
	}))
}
