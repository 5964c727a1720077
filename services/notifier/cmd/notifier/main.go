// Command notifier runs Rampart's notifier service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/notifier/app"
)

func main() {
	opts := app.DefaultOptions()
	os.Exit(service.Main("notifier", opts.BindFlags, func(*slog.Logger) (service.Component, error) {
		return app.New(opts)
	}))
}
