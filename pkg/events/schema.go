package events

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The official CDEvents v0.5.1 schemas (Apache-2.0, see schemas/cdevents/LICENSE)
// and Rampart's schemas for its own event types.
//
//go:embed schemas/cdevents/*.json schemas/cdevents/links/*.json schemas/rampart/*.json
var schemaFS embed.FS

// customSchemaID validates dev.cdeventsx types Rampart has no schema of its own for.
const customSchemaID = "https://github.com/rampartci/rampart/schema/custom-event"

// Schemas validates CDEvents against JSON Schemas (draft 2020-12).
type Schemas struct {
	byType map[string]*jsonschema.Schema
	custom *jsonschema.Schema
}

var (
	defaultSchemas     *Schemas
	defaultSchemasErr  error
	defaultSchemasOnce sync.Once
)

// DefaultSchemas returns the schemas compiled into this package.
func DefaultSchemas() (*Schemas, error) {
	defaultSchemasOnce.Do(func() {
		defaultSchemas, defaultSchemasErr = LoadSchemas(schemaFS, "schemas")
	})
	return defaultSchemas, defaultSchemasErr
}

// LoadSchemas compiles every *.json schema below dir in fsys. Each event schema
// is registered for the type its context.type enum names.
func LoadSchemas(fsys fs.FS, dir string) (*Schemas, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	var ids, eventIDs []string
	typeOf := map[string]string{}
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".json" {
			return err
		}
		raw, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("schema %s: %w", p, err)
		}
		var head struct {
			ID         string `json:"$id"`
			Properties struct {
				Context struct {
					Properties struct {
						Type struct {
							Enum []string `json:"enum"`
						} `json:"type"`
					} `json:"properties"`
				} `json:"context"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" {
			return fmt.Errorf("schema %s has no $id", p)
		}
		if err := c.AddResource(head.ID, doc); err != nil {
			return fmt.Errorf("schema %s: %w", p, err)
		}
		ids = append(ids, head.ID)
		if enum := head.Properties.Context.Properties.Type.Enum; len(enum) == 1 {
			eventIDs = append(eventIDs, head.ID)
			typeOf[head.ID] = enum[0]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	s := &Schemas{byType: map[string]*jsonschema.Schema{}}
	for _, id := range eventIDs {
		sch, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", id, err)
		}
		s.byType[typeOf[id]] = sch
	}
	if typeOf[customSchemaID] == "" && slices.Contains(ids, customSchemaID) {
		if s.custom, err = c.Compile(customSchemaID); err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", customSchemaID, err)
		}
	}
	return s, nil
}

// Types lists the event types these schemas know.
func (s *Schemas) Types() []string {
	out := make([]string, 0, len(s.byType))
	for t := range s.byType {
		out = append(out, t)
	}
	return out
}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid event")

// ValidateCDEvent validates a CDEvent document (the CloudEvent's data) against
// the schema of its type. A CDEvents type with no schema here is refused; a
// custom dev.cdeventsx type without its own schema is checked for the shape
// every custom event must have.
func (s *Schemas) ValidateCDEvent(typ string, data []byte) error {
	return s.validateCDEvent(typ, data, nil)
}

// validateCDEvent is ValidateCDEvent; t, when not nil, is data as the
// scanner read it.
func (s *Schemas) validateCDEvent(typ string, data []byte, t *tree) error {
	sch, err := s.schemaFor(typ)
	if err != nil {
		return err
	}
	var doc any
	if t != nil {
		doc = t.doc
	} else if doc, err = decodeTree(data); err != nil {
		return fmt.Errorf("%w: data is not JSON: %v", ErrInvalid, err)
	}
	if quickCheck(sch, doc, 0) == valid {
		return nil
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, typ, oneLine(err))
	}
	return nil
}

// schemaFor is the schema that validates a CDEvent of type typ.
func (s *Schemas) schemaFor(typ string) (*jsonschema.Schema, error) {
	if sch, ok := s.byType[typ]; ok {
		return sch, nil
	}
	if !strings.HasPrefix(typ, "dev.cdeventsx.") || s.custom == nil {
		return nil, fmt.Errorf("%w: no CDEvents %s schema for type %q", ErrInvalid, CDEventsVersion, typ)
	}
	return s.custom, nil
}

// oneLine flattens the validator's multi-line report.
func oneLine(err error) string {
	var verr *jsonschema.ValidationError
	if errors.As(err, &verr) {
		var leaves []string
		var walk func(e *jsonschema.ValidationError)
		walk = func(e *jsonschema.ValidationError) {
			if len(e.Causes) == 0 {
				leaves = append(leaves, fmt.Sprintf("at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind))
			}
			for _, c := range e.Causes {
				walk(c)
			}
		}
		walk(verr)
		return strings.Join(leaves, "; ")
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// Validate checks ev as a whole: CloudEvents 1.0 attributes, a CDEvent as data
// that agrees with them, a version Rampart reads, and the CDEvent's schema.
func Validate(ev cloudevents.Event) error {
	s, err := DefaultSchemas()
	if err != nil {
		return err
	}
	return s.Validate(ev)
}

// Validate is the package-level Validate with these schemas.
func (s *Schemas) Validate(ev cloudevents.Event) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, ev.ID(), oneLine(err))
	}
	if t, ok := scanTree(ev.Data()); ok {
		return s.validateData(ev, &t)
	}
	return s.validateData(ev, nil)
}

// validateData is Validate after ev's attributes were checked; t, when not
// nil, is ev's data as the scanner read it. An event whose context the
// tree shows to agree (parses) and whose schema the quick check finds valid
// is valid; Parse and the schema validator decide every other.
func (s *Schemas) validateData(ev cloudevents.Event, t *tree) error {
	if t != nil && parses(ev, t) {
		sch, err := s.schemaFor(ev.Type())
		if err == nil && quickCheck(sch, t.doc, 0) == valid {
			return nil
		}
	}
	if _, err := Parse(ev); err != nil {
		if errors.Is(err, ErrUnsupportedVersion) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.validateCDEvent(ev.Type(), ev.Data(), t); err != nil {
		return fmt.Errorf("event %s: %w", ev.ID(), err)
	}
	return nil
}
