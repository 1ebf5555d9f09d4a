package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"
)

// Secrets are the configuration fields tagged `secret:"true"` (passwords,
// key passphrases). Each may also be read from a file named by a sibling
// field tagged `secretfile:"<GoFieldName>"` (password_file, ...), so that
// the value lives in a Docker or Kubernetes secret rather than in the YAML
// or the environment. `recstream config check` prints them masked, and
// nothing in recstream logs them.

// Mask replaces a secret's value in printed configurations.
const Mask = "********"

// resolveSecretFiles reads every secret given as a file into its field.
// Setting both the secret and its file is an error: which one wins would
// be a guess.
func resolveSecretFiles(cfg *Config) error {
	return walkStructs(reflect.ValueOf(cfg).Elem(), "", func(path string, v reflect.Value, f reflect.StructField, fv reflect.Value) error {
		target := f.Tag.Get("secretfile")
		if target == "" || fv.String() == "" {
			return nil
		}
		secret := v.FieldByName(target)
		st, ok := v.Type().FieldByName(target)
		if !ok || secret.Kind() != reflect.String {
			return fmt.Errorf("%s: secretfile names no string field %q", path, target) // a programming error
		}
		secretPath := yamlPath(pathParent(path), st)
		if secret.String() != "" {
			return fmt.Errorf("%s: set either %s or %s, not both", path, secretPath, path)
		}
		raw, err := os.ReadFile(fv.String())
		if err != nil {
			// The error holds the file name, which is not a secret.
			return fmt.Errorf("%s: %w", path, err)
		}
		value := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		if value == "" {
			return fmt.Errorf("%s: %s is empty", path, fv.String())
		}
		secret.SetString(value)
		return nil
	})
}

// Masked returns a copy of c with every secret that is set replaced by
// Mask, for printing. Empty secrets stay empty, so that the output still
// shows which ones are missing.
func Masked(c Config) Config {
	_ = walkStructs(reflect.ValueOf(&c).Elem(), "", func(_ string, _ reflect.Value, f reflect.StructField, fv reflect.Value) error {
		if f.Tag.Get("secret") == "true" && fv.Kind() == reflect.String && fv.String() != "" {
			fv.SetString(Mask)
		}
		return nil
	})
	return c
}

// SecretValues returns the values of the secrets set in c, for redacting
// logs and for tests that check nothing leaks.
func SecretValues(c Config) []string {
	var out []string
	_ = walkStructs(reflect.ValueOf(&c).Elem(), "", func(_ string, _ reflect.Value, f reflect.StructField, fv reflect.Value) error {
		if f.Tag.Get("secret") == "true" && fv.Kind() == reflect.String && fv.String() != "" {
			out = append(out, fv.String())
		}
		return nil
	})
	return out
}

// SecretPaths lists the YAML paths of every secret field, in declaration
// order.
func SecretPaths() []string {
	var out []string
	var c Config
	_ = walkStructs(reflect.ValueOf(&c).Elem(), "", func(path string, _ reflect.Value, f reflect.StructField, _ reflect.Value) error {
		if f.Tag.Get("secret") == "true" {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// walkStructs calls fn for every exported leaf field of the struct v with
// its YAML path, the struct holding it, its type field and its value.
func walkStructs(v reflect.Value, path string, fn func(path string, parent reflect.Value, f reflect.StructField, fv reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		fpath := yamlPath(path, f)
		fv := v.Field(i)
		// A time.Time is a value, not a section.
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
			if err := walkStructs(fv, fpath, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(fpath, v, f, fv); err != nil {
			return err
		}
	}
	return nil
}

// yamlPath is the dotted YAML path of field f below parent.
func yamlPath(parent string, f reflect.StructField) string {
	name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" && opts == "inline" {
		return parent // an inlined struct's fields sit in its parent's section
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func pathParent(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}
