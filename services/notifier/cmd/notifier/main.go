// Command notifier runs Rampart's notifier service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/notifier/app"
)

func main() {
	os.Exit(service.Main("notifier", nil, func(*slog.Logger) (service.Component, error) { return app.New(), nil }))
}
