package cvmsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
)

// API 3.0 action parameters arrive either as a JSON body (TC3) or flattened
// into form fields such as LoginSettings.KeyIds.0 (signature v1). Both are
// reduced to the same flat map of leaves and decoded by one strict decoder,
// so both encodings get identical validation.

// leafKind is the JSON type of a leaf, or leafForm for a form value whose
// type is implied by the parameter it fills.
type leafKind int

const (
	leafForm leafKind = iota
	leafString
	leafNumber
	leafBool
)

// leaf is one scalar parameter value.
type leaf struct {
	text string
	kind leafKind
}

// v1CommonParams are the common parameters of signature v1 requests; they
// are not action parameters.
var v1CommonParams = map[string]bool{
	"Action": true, "Version": true, "Region": true, "Timestamp": true, "Nonce": true,
	"SecretId": true, "Signature": true, "SignatureMethod": true, "Token": true,
	"Language": true, "RequestClient": true,
}

// flattenForm turns form values into leaves, skipping common parameters.
// A repeated name keeps its first value.
func flattenForm(v url.Values) map[string]leaf {
	out := make(map[string]leaf, len(v))
	for name, vals := range v {
		if !v1CommonParams[name] && len(vals) > 0 {
			out[name] = leaf{text: vals[0], kind: leafForm}
		}
	}
	return out
}

// flattenJSON turns a JSON object into leaves named like form fields.
// Nulls are dropped, as if absent. An empty body is an empty object.
func flattenJSON(body []byte) (map[string]leaf, *apiErr) {
	out := map[string]leaf{}
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, newErr(errInvalidParameter, "request body is not valid JSON")
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, newErr(errInvalidParameter, "request body must be a JSON object")
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(prefix+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(prefix+"."+strconv.Itoa(i), e)
			}
		case string:
			out[prefix] = leaf{text: v, kind: leafString}
		case json.Number:
			out[prefix] = leaf{text: v.String(), kind: leafNumber}
		case bool:
			out[prefix] = leaf{text: strconv.FormatBool(v), kind: leafBool}
		}
	}
	for k, e := range obj {
		walk(k, e)
	}
	return out, nil
}

// decodeParams fills the struct dst points to from leaves, matching Go
// field names case-sensitively, as the API does. Pointers tell absent from
// zero. A leaf no field consumed answers UnknownParameter, and a value of
// the wrong type InvalidParameter; this catches misspelt or 1-based
// parameters that a lenient decoder would ignore.
func decodeParams(leaves map[string]leaf, dst any) *apiErr {
	d := decoder{leaves: leaves, used: map[string]bool{}}
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		if _, err := d.decode(v.Type().Field(i).Name, v.Field(i)); err != nil {
			return err
		}
	}
	var unknown []string
	for name := range leaves {
		if !d.used[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return newErr(errUnknownParameter, "unknown parameter %s", unknown[0])
	}
	return nil
}

type decoder struct {
	leaves map[string]leaf
	used   map[string]bool
}

// decode fills v from the leaves under name and reports whether any was there.
func (d *decoder) decode(name string, v reflect.Value) (bool, *apiErr) {
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		present, err := d.decode(name, e.Elem())
		if present {
			v.Set(e)
		}
		return present, err
	case reflect.Struct:
		if _, ok := d.leaves[name]; ok {
			d.used[name] = true
			return true, newErr(errInvalidParameter, "parameter %s must be an object", name)
		}
		present := false
		for i := range v.NumField() {
			p, err := d.decode(name+"."+v.Type().Field(i).Name, v.Field(i))
			if err != nil {
				return true, err
			}
			present = present || p
		}
		return present, nil
	case reflect.Slice:
		if _, ok := d.leaves[name]; ok {
			d.used[name] = true
			return true, newErr(errInvalidParameter, "parameter %s must be an array", name)
		}
		for i := 0; ; i++ {
			e := reflect.New(v.Type().Elem()).Elem()
			p, err := d.decode(name+"."+strconv.Itoa(i), e)
			if err != nil {
				return true, err
			}
			if !p {
				return v.Len() > 0, nil
			}
			v.Set(reflect.Append(v, e))
		}
	}
	l, ok := d.leaves[name]
	if !ok {
		return false, nil
	}
	d.used[name] = true
	bad := newErr(errInvalidParameter, "parameter %s must be of type %s", name, v.Kind())
	switch v.Kind() {
	case reflect.String:
		if l.kind != leafString && l.kind != leafForm {
			return true, bad
		}
		v.SetString(l.text)
	case reflect.Int64:
		n, err := strconv.ParseInt(l.text, 10, 64)
		if err != nil || (l.kind != leafNumber && l.kind != leafForm) {
			return true, bad
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(l.text)
		if err != nil || (l.kind != leafBool && l.kind != leafForm) {
			return true, bad
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("cvmsim: decodeParams: unsupported kind %s", v.Kind()))
	}
	return true, nil
}
