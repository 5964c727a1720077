// Command scanner runs Rampart's scanner service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/scanner/app"
)

func main() {
	opts := app.DefaultOptions()
	os.Exit(service.Main("scanner", opts.BindFlags, func(*slog.Logger) (service.Component, error) { return app.New(opts) }))
}
