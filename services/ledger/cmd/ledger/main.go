// Command ledger runs Rampart's ledger service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/ledger/app"
)

func main() {
	opts := app.DefaultOptions(".")
	os.Exit(service.Main("ledger", opts.BindFlags, func(*slog.Logger) (service.Component, error) {
		return app.New(opts)
	}))
}
