// Command watcher runs Rampart's watcher service on its own.
package main

import (
	"log/slog"
	"os"

	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/watcher/app"
)

func main() {
	os.Exit(service.Main("watcher", nil, func(*slog.Logger) (service.Component, error) { return app.New(), nil }))
}
