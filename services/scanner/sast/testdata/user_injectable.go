package shop

import (
	"database/sql"
	"net/http"
)

func User(db *sql.DB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.Query("SELECT name FROM users WHERE id = " + r.URL.Query().Get("id"))
		if err != nil {
			http.Error(w, "error", http.StatusInternalServerError)
			return
		}
		defer rows.Close()
	}
}
