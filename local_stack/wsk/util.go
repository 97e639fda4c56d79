package main

// Shared helpers: the -p/-a argument pre-pass, JSON parameters, qualified names, argument checks,
// errors and exit codes, and output (ok lines, JSON, lists, summaries).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/fatih/color"
	"github.com/mattn/go-colorable"
	"github.com/spf13/cobra"
)

// Key/value arguments taken out of the command line before cobra parses it, each one as a JSON
// object string (a -P/-A file's content is kept whole), as the real CLI does.
var (
	paramArgs        []string // -p/--param KEY VALUE, -P/--param-file FILE
	annotArgs        []string // -a/--annotation KEY VALUE, -A/--annotation-file FILE
	feedParamArgs    []string // -F/--feed-param KEY VALUE
	triggerParamArgs []string // -T/--trigger-param KEY VALUE
)

// List options shared by the list commands.
var listOpts struct {
	skip, limit int
	nameSort    bool
}

var bold = color.New(color.Bold).SprintFunc()

// ---- argument pre-pass ----

// extractKeyValueArgs removes every -p/-a/-P/-A/-F/-T option (with its operands) from args and
// stores it in the variables above. It runs before cobra, so these options work anywhere.
func extractKeyValueArgs(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		var dest *[]string
		pair, file := false, false
		switch arg {
		case "-p", "--param":
			dest, pair = &paramArgs, true
		case "-a", "--annotation":
			dest, pair = &annotArgs, true
		case "-P", "--param-file":
			dest, file = &paramArgs, true
		case "-A", "--annotation-file":
			dest, file = &annotArgs, true
		case "-F", "--feed-param":
			dest, pair = &feedParamArgs, true
		case "-T", "--trigger-param":
			dest, pair = &triggerParamArgs, true
		default:
			rest = append(rest, arg)
			continue
		}
		invalid := "The parameter arguments are invalid: %s"
		if dest == &annotArgs {
			invalid = "The annotation arguments are invalid: %s"
		}
		switch {
		case pair && i+2 < len(args):
			*dest = append(*dest, formattedJSON(args[i+1], args[i+2]))
			i += 2
		case pair:
			err := usageError(fmt.Sprintf("Arguments for '%s' must be a key/value pair", arg))
			if dest == &feedParamArgs || dest == &triggerParamArgs {
				return nil, err
			}
			return nil, usageError(fmt.Sprintf(invalid, err))
		case file && i+1 < len(args):
			content, err := readFile(args[i+1])
			if err != nil {
				return nil, err
			}
			*dest = append(*dest, content)
			i++
		default:
			err := usageError(fmt.Sprintf("An argument must be provided for '%s'", arg))
			return nil, usageError(fmt.Sprintf(invalid, err))
		}
	}
	return rest, nil
}

// formattedJSON builds {"key": value}: the value is kept as JSON when it parses as JSON and
// is quoted as a string otherwise (without escaping, exactly like the real CLI).
func formattedJSON(key, value string) string {
	key = strings.ReplaceAll(strings.ReplaceAll(key, `\`, `\\`), `"`, `\"`)
	var v interface{}
	if json.Unmarshal([]byte(value), &v) == nil {
		return fmt.Sprintf(`{"%s": %s}`, key, value)
	}
	return fmt.Sprintf(`{"%s": "%s"}`, key, value)
}

// jsonObject merges the JSON object strings into one map (later keys win), keeping numbers exact.
func jsonObject(content []string) (map[string]interface{}, error) {
	data := map[string]interface{}{}
	for _, c := range content {
		dec := json.NewDecoder(strings.NewReader(c))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// keyValues turns a map into the key/value array of the API, sorted by key.
func keyValues(data map[string]interface{}) whisk.KeyValueArr {
	var kvs whisk.KeyValueArr
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kvs = append(kvs, whisk.KeyValue{Key: k, Value: data[k]})
	}
	return kvs
}

// paramsKV and annotsKV parse the arguments into key/value arrays, with the real CLI's messages.
func paramsKV(args []string) (whisk.KeyValueArr, error) {
	data, err := jsonObject(args)
	if err != nil {
		return nil, wrapUsage(fmt.Sprintf("Invalid parameter argument '%#v': %s", args, err), err)
	}
	return keyValues(data), nil
}

func annotsKV(args []string) (whisk.KeyValueArr, error) {
	data, err := jsonObject(args)
	if err != nil {
		return nil, wrapUsage(fmt.Sprintf("Invalid annotation argument '%#v': %s", args, err), err)
	}
	return keyValues(data), nil
}

// paramsMap parses the arguments into a JSON object (a request body).
func paramsMap(args []string) (map[string]interface{}, error) {
	data, err := jsonObject(args)
	if err != nil {
		return nil, wrapUsage(fmt.Sprintf("Invalid parameter argument '%#v': %s", args, err), err)
	}
	return data, nil
}

func readFile(name string) (string, error) {
	if _, err := os.Stat(name); err != nil {
		if os.IsNotExist(err) {
			return "", whisk.MakeWskError(fmt.Errorf("File '%s' is not a valid file or it does not exist", name),
				whisk.EXIT_CODE_ERR_USAGE, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
		}
		return "", whisk.MakeWskError(fmt.Errorf("Cannot access file '%s': %s", name, err),
			whisk.EXIT_CODE_ERR_USAGE, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return "", whisk.MakeWskError(fmt.Errorf("Unable to read the file '%s': %s", name, err),
			whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
	}
	return string(data), nil
}

// ---- qualified names ----

// qname is a parsed [/namespace/][package/]entity name; the namespace defaults to "_".
type qname struct {
	namespace string // without slashes
	pkg       string // may be empty
	entity    string // last segment
	name      string // [package/]entity, the name used in URLs
}

func parseQName(name string) (*qname, error) {
	q := &qname{}
	orig := name
	parts := strings.Split(name, "/")
	if len(parts) == 3 && parts[0] != "" {
		name = "/" + name // ns/pkg/entity
		parts = strings.Split(name, "/")
	}
	invalid := whisk.MakeWskError(fmt.Errorf("'%s' is not a valid qualified name: A valid qualified name must be specified.", orig),
		whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
	if strings.HasPrefix(name, "/") {
		if len(parts) > 4 {
			return nil, invalid
		}
		for _, p := range parts[1:] {
			if p == "" || p == "." {
				return nil, invalid
			}
		}
		q.namespace = parts[1]
		q.name = strings.Join(parts[2:], "/")
		if len(parts) == 4 {
			q.pkg = parts[2]
		}
		q.entity = parts[len(parts)-1]
		return q, nil
	}
	if name == "" || name == "." {
		return nil, invalid
	}
	q.namespace = properties.namespace
	q.name = name
	q.entity = parts[len(parts)-1]
	if len(parts) == 2 {
		q.pkg = parts[0]
	}
	return q, nil
}

// full returns /namespace/[package/]entity.
func (q *qname) full() string {
	s := ""
	if q.namespace != "" {
		s = "/" + q.namespace + "/"
	}
	if q.pkg != "" {
		s += q.pkg + "/"
	}
	return s + q.entity
}

// fullyQualified returns a name with a namespace: foo -> /_/foo, pkg/foo -> /_/pkg/foo.
func fullyQualified(name string) string {
	if parts := strings.Split(name, "/"); len(parts) == 3 && parts[0] != "" {
		name = "/" + name
	}
	if strings.HasPrefix(name, "/") {
		return name
	}
	return "/" + properties.namespace + "/" + name
}

// clientNamespace is the namespace the client is pointed at, "_" shown as "default".
func clientNamespace() string {
	if client.Namespace == "_" {
		return "default"
	}
	return client.Namespace
}

// ---- arguments and errors ----

func checkArgs(args []string, min, max int, required string) error {
	if len(args) < min {
		return usageError("Invalid argument(s). " + required)
	}
	if len(args) > max {
		return usageError(fmt.Sprintf("Invalid argument(s): %s. %s", strings.Join(args[max:], ", "), required))
	}
	return nil
}

// usageError is a general error (exit 1) shown with the usage hint.
func usageError(msg string) error {
	return whisk.MakeWskError(errors.New(msg), whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
}

// plainError is a general error (exit 1) shown without the usage hint.
func plainError(msg string) error {
	return whisk.MakeWskError(errors.New(msg), whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
}

// wrap gives err a new message; the exit code and display flags of err (a client-go error
// carries status-256 for HTTP errors) are kept, as the real CLI does.
func wrap(msg string, err error) error {
	return whisk.MakeWskErrorFromWskError(errors.New(msg), err, whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
}

// wrapUsage is wrap plus the usage hint.
func wrapUsage(msg string, err error) error {
	return whisk.MakeWskErrorFromWskError(errors.New(msg), err, whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
}

// exitOnError prints err the way the real CLI does and exits with its exit code.
func exitOnError(err error) {
	if err == nil {
		return
	}
	stderr := colorable.NewColorableStderr()
	code, showMsg, shown, prefix, usage := 1, false, true, true, false
	if werr, ok := err.(*whisk.WskError); ok {
		code, showMsg, shown, prefix, usage = werr.ExitCode, werr.DisplayMsg, werr.MsgDisplayed, werr.DisplayPrefix, werr.DisplayUsage
	} else {
		fmt.Fprintf(os.Stderr, "%s\n", err)
	}
	if showMsg && !shown {
		if prefix && code != 0 {
			fmt.Fprintf(stderr, "%s%s\n", color.RedString("error: "), err)
		} else {
			fmt.Fprintf(stderr, "%s\n", err)
		}
	}
	if usage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", rootCmd.CommandPath())
	}
	os.Exit(code)
}

// ---- output ----

// okf prints "ok: <message>" on stdout.
func okf(format string, a ...interface{}) {
	fmt.Fprintf(color.Output, "%s %s\n", color.GreenString("ok:"), fmt.Sprintf(format, a...))
}

// printJSON prints v as JSON indented by four spaces, HTML characters unescaped, on w or stdout.
func printJSON(v interface{}, w ...io.Writer) {
	var buf, out bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(&v)
	_ = json.Indent(&out, buf.Bytes(), "", "    ")
	if len(w) > 0 {
		fmt.Fprintf(w[0], "%s", out.String())
	} else {
		fmt.Fprintf(os.Stdout, "%s", out.String())
	}
}

// printList prints a collection: a bold header, then one row per entity; sorted by name on request.
func printList(items []whisk.Printable, emptyHeader string, sortByName bool) {
	if len(items) == 0 {
		fmt.Fprintf(color.Output, "%s\n", bold(emptyHeader))
		return
	}
	if sortByName {
		sort.SliceStable(items, func(i, j int) bool {
			return items[i].(whisk.Sortable).Compare(items[j].(whisk.Sortable))
		})
	}
	fmt.Fprint(color.Output, bold(items[0].ToHeaderString()))
	for _, it := range items {
		fmt.Print(it.ToSummaryRowString())
	}
}

func addListFlags(cmd *cobra.Command, what string, limit int) {
	cmd.Flags().IntVarP(&listOpts.skip, "skip", "s", 0, "exclude the first `SKIP` number of "+what+" from the result")
	cmd.Flags().IntVarP(&listOpts.limit, "limit", "l", limit, "only return `LIMIT` number of "+what+" from the collection")
	if what != "activations" {
		cmd.Flags().BoolVarP(&listOpts.nameSort, "name-sort", "n", false, "sorts a list alphabetically by entity name; only applicable within the limit/skip returned entity block")
	}
}

// addKeyValueFlags documents the options that extractKeyValueArgs handles (cobra never sees them).
func addKeyValueFlags(cmd *cobra.Command, annotations bool) {
	var ignored []string
	var ignoredFile string
	cmd.Flags().StringSliceVarP(&ignored, "param", "p", nil, "parameter values in `KEY VALUE` format")
	cmd.Flags().StringVarP(&ignoredFile, "param-file", "P", "", "`FILE` containing parameter values in JSON format")
	if annotations {
		cmd.Flags().StringSliceVarP(&ignored, "annotation", "a", nil, "annotation values in `KEY VALUE` format")
		cmd.Flags().StringVarP(&ignoredFile, "annotation-file", "A", "", "`FILE` containing annotation values in JSON format")
	}
}

// printField prints the field of an entity named (case-insensitively) by field.
func printField(v interface{}, field string) {
	f := reflect.Indirect(reflect.ValueOf(v)).FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, field) })
	printJSON(f.Interface())
}

func fieldExists(v interface{}, field string) bool {
	t := reflect.Indirect(reflect.ValueOf(v)).Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.EqualFold(t.Field(i).Name, field) {
			return true
		}
	}
	return false
}

func invalidFieldError(field string) error {
	return plainError(fmt.Sprintf("Invalid field filter '%s'.", field))
}

// ---- summaries (get --summary) ----

func fullName(namespace, pkg, entity string) string {
	parts := []string{}
	for _, p := range []string{namespace, pkg, entity} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if namespace == "" {
		return ""
	}
	return "/" + strings.Join(parts, "/")
}

func stringValue(kvs whisk.KeyValueArr, key string) string {
	s, _ := kvs.GetValue(key).(string)
	return s
}

// paramUnion lists the bound parameters (prefixed "*", or "**" when the entity is final) and the
// parameters described in the "parameters" annotation, sorted.
func paramUnion(annots, params whisk.KeyValueArr) []string {
	tag := "*"
	if final, _ := annots.GetValue("final").(bool); final {
		tag = "**"
	}
	bound := map[string]bool{}
	seen := map[string]bool{}
	var names []string
	for _, p := range params {
		bound[p.Key] = true
		if !seen[p.Key] {
			seen[p.Key] = true
			names = append(names, p.Key)
		}
	}
	if described, ok := annots.GetValue("parameters").([]interface{}); ok {
		for _, d := range described {
			if m, ok := d.(map[string]interface{}); ok {
				if n, ok := m["name"].(string); ok && !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	sort.Strings(names)
	for i, n := range names {
		if bound[n] {
			names[i] = tag + n
		}
	}
	return names
}

func printEntitySummary(kind, name, description string, params []string) {
	paramStr := strings.Join(params, ", ")
	if paramStr == "" {
		paramStr = "none defined"
	}
	switch {
	case description != "":
		fmt.Fprintf(color.Output, "%s %s: %s\n", bold(kind), name, description)
	case len(params) > 0:
		fmt.Fprintf(color.Output, "%s %s: %s\n", bold(kind), name, paramDescription(paramStr))
	default:
		fmt.Fprintf(color.Output, "%s %s\n", bold(kind), name)
	}
	fmt.Fprintf(color.Output, "   (%s: %s)\n", bold("parameters"), paramStr)
}

// paramDescription is the default description built from the parameter names.
func paramDescription(params string) string {
	params = strings.ReplaceAll(params, "*", "")
	parts := strings.Split(params, ",")
	if len(parts) > 1 {
		last := parts[len(parts)-1]
		return "Returns a result based on parameters " + strings.Replace(params, ","+last, " and"+last, 1)
	}
	return "Returns a result based on parameter " + params
}

var timestampRe = regexp.MustCompile(`\d{4}-[01]{1}\d{1}-[0-3]{1}\d{1}T[0-2]{1}\d{1}:[0-6]{1}\d{1}:[0-6]{1}\d{1}.\d+Z( *(stdout|stderr):)?\s(.*)`)

// stripTimestamp removes the leading timestamp and stream name of an activation log line.
func stripTimestamp(line string) string {
	if m := timestampRe.FindStringSubmatch(line); len(m) > 3 && m[3] != "" {
		return m[3]
	}
	return line
}

// printables converts a list of entities for printList.
func printables[T whisk.Printable](list []T) []whisk.Printable {
	items := make([]whisk.Printable, len(list))
	for i := range list {
		items[i] = list[i]
	}
	return items
}
