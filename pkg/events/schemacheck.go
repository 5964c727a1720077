package events

import (
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// verdict is what quickCheck can say of an instance.
type verdict int8

const (
	unsure  verdict = iota // a keyword quickCheck does not evaluate: ask the validator
	valid                  // every keyword on the way holds
	invalid                // some keyword fails
)

// The bits jsonschema.Types gives each JSON type.
var (
	typeNull    = typeBit("null")
	typeBoolean = typeBit("boolean")
	typeNumber  = typeBit("number")
	typeInteger = typeBit("integer")
	typeString  = typeBit("string")
	typeArray   = typeBit("array")
	typeObject  = typeBit("object")
)

func typeBit(name string) int {
	var t jsonschema.Types
	t.Add(name)
	return int(t)
}

// maxCheckDepth bounds quickCheck's descent; a schema that refers to
// itself on the same value is the validator's to report.
const maxCheckDepth = 64

// quickCheck evaluates the keywords the contract's schemas use (type, enum
// of strings, format, $ref, properties, required, additionalProperties,
// items, min/maxItems, min/maxLength, pattern, minimum and maximum of
// integers, allOf, anyOf, oneOf) over the
// tree decodeTree builds, as jsonschema/v6 does but without building a
// validator for each value. Any other keyword makes it unsure. Only its
// valid verdict is used: ValidateCDEvent then skips the validator, which
// decides (and words the error) in every other case. FuzzQuickCheck holds
// the verdicts equal to the validator's.
func quickCheck(s *jsonschema.Schema, v any, depth int) verdict {
	if depth > maxCheckDepth {
		return unsure
	}
	if s.Bool != nil {
		if *s.Bool {
			return valid
		}
		return invalid
	}
	if s.DraftVersion < 2020 || s.RecursiveRef != nil || s.DynamicRef != nil || s.Const != nil || s.Not != nil ||
		s.If != nil || s.Then != nil || s.Else != nil || s.UnevaluatedProperties != nil || s.UnevaluatedItems != nil ||
		len(s.Extensions) > 0 {
		return unsure
	}
	var t int
	switch v.(type) {
	case nil:
		t = typeNull
	case bool:
		t = typeBoolean
	case json.Number:
		t = typeNumber
	case string:
		t = typeString
	case []any:
		t = typeArray
	case map[string]any:
		t = typeObject
	default:
		return unsure
	}
	if s.Types != nil && !s.Types.IsEmpty() {
		if types := int(*s.Types); types&t == 0 {
			if t != typeNumber || types&typeInteger == 0 {
				return invalid
			}
			if _, ok := plainInt(v.(json.Number)); !ok {
				return unsure // whether 1.0 or 1e2 is an integer is the validator's to say
			}
		}
	}
	if s.Enum != nil {
		str, ok := v.(string)
		if !ok {
			return unsure
		}
		if !slices.ContainsFunc(s.Enum.Values, func(e any) bool { es, ok := e.(string); return ok && es == str }) {
			return invalid
		}
	}
	if s.Format != nil && s.Format.Validate(v) != nil {
		return invalid
	}
	r := valid
	if s.Ref != nil {
		if r = both(r, quickCheck(s.Ref, v, depth+1)); r == invalid {
			return r
		}
	}
	switch v := v.(type) {
	case map[string]any:
		r = both(r, quickObject(s, v, depth))
	case []any:
		r = both(r, quickArray(s, v, depth))
	case string:
		r = both(r, quickString(s, v))
	case json.Number:
		r = both(r, quickNumber(s, v))
	}
	if r == invalid {
		return r
	}
	for _, sub := range s.AllOf {
		if r = both(r, quickCheck(sub, v, depth+1)); r == invalid {
			return r
		}
	}
	if len(s.AnyOf) > 0 {
		anyOf := invalid
		for _, sub := range s.AnyOf {
			if q := quickCheck(sub, v, depth+1); q == valid {
				anyOf = valid
				break
			} else if q == unsure {
				anyOf = unsure
			}
		}
		r = both(r, anyOf)
	}
	if len(s.OneOf) > 0 {
		matched := 0
		for _, sub := range s.OneOf {
			switch quickCheck(sub, v, depth+1) {
			case valid:
				matched++
			case unsure:
				return unsure
			}
		}
		if matched != 1 {
			return invalid
		}
	}
	return r
}

// both is the verdict of two keywords that must both hold.
func both(a, b verdict) verdict {
	switch {
	case a == invalid || b == invalid:
		return invalid
	case a == unsure || b == unsure:
		return unsure
	}
	return valid
}

func quickObject(s *jsonschema.Schema, obj map[string]any, depth int) verdict {
	if s.MinProperties != nil || s.MaxProperties != nil || len(s.Dependencies) > 0 || s.PropertyNames != nil ||
		len(s.DependentSchemas) > 0 || len(s.DependentRequired) > 0 || len(s.PatternProperties) > 0 {
		return unsure
	}
	for _, name := range s.Required {
		if _, ok := obj[name]; !ok {
			return invalid
		}
	}
	r := valid
	for name, pv := range obj {
		if ps, ok := s.Properties[name]; ok {
			r = both(r, quickCheck(ps, pv, depth+1))
		} else {
			switch additional := s.AdditionalProperties.(type) {
			case nil:
			case bool:
				if !additional {
					return invalid
				}
			case *jsonschema.Schema:
				r = both(r, quickCheck(additional, pv, depth+1))
			default:
				return unsure
			}
		}
		if r == invalid {
			return r
		}
	}
	return r
}

func quickArray(s *jsonschema.Schema, arr []any, depth int) verdict {
	if s.UniqueItems || s.Contains != nil || s.MinContains != nil || s.MaxContains != nil || len(s.PrefixItems) > 0 ||
		s.Items != nil || s.AdditionalItems != nil {
		return unsure
	}
	if (s.MinItems != nil && len(arr) < *s.MinItems) || (s.MaxItems != nil && len(arr) > *s.MaxItems) {
		return invalid
	}
	r := valid
	if s.Items2020 != nil {
		for _, item := range arr {
			if r = both(r, quickCheck(s.Items2020, item, depth+1)); r == invalid {
				return r
			}
		}
	}
	return r
}

// quickNumber evaluates minimum and maximum for integers of 64 bits.
func quickNumber(s *jsonschema.Schema, num json.Number) verdict {
	if s.ExclusiveMaximum != nil || s.ExclusiveMinimum != nil || s.MultipleOf != nil {
		return unsure
	}
	if s.Minimum == nil && s.Maximum == nil {
		return valid
	}
	n, ok := plainInt(num)
	if !ok {
		return unsure
	}
	for _, bound := range []struct {
		limit *big.Rat
		below bool // n must not be below the limit
	}{{s.Minimum, true}, {s.Maximum, false}} {
		if bound.limit == nil {
			continue
		}
		if !bound.limit.IsInt() || !bound.limit.Num().IsInt64() {
			return unsure
		}
		if l := bound.limit.Num().Int64(); (bound.below && n < l) || (!bound.below && n > l) {
			return invalid
		}
	}
	return valid
}

// plainInt is num when it is written as an integer that fits 64 bits.
func plainInt(num json.Number) (int64, bool) {
	n, err := strconv.ParseInt(string(num), 10, 64)
	return n, err == nil
}

func quickString(s *jsonschema.Schema, str string) verdict {
	if s.ContentEncoding != nil || s.ContentMediaType != nil || s.ContentSchema != nil {
		return unsure
	}
	if s.MinLength != nil || s.MaxLength != nil {
		n := utf8.RuneCountInString(str)
		if (s.MinLength != nil && n < *s.MinLength) || (s.MaxLength != nil && n > *s.MaxLength) {
			return invalid
		}
	}
	if s.Pattern != nil && !s.Pattern.MatchString(str) {
		return invalid
	}
	return valid
}
