package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/fatih/color"
	"github.com/mattn/go-colorable"
	"github.com/spf13/cobra"
)

var actionOpts struct {
	kind, main, docker, web string
	native, copy, sequence  bool
	timeout, memory         int
	logsize, concurrency    int
	delAnnotations          []string
	blocking, result        bool
	summary, url            bool
}

var actionCmd = &cobra.Command{Use: "action", Short: "work with actions"}

func init() {
	create := newCmd("create ACTION_NAME ACTION", "create a new action", func(cmd *cobra.Command, args []string) error {
		return actionCreateOrUpdate(cmd, args, false)
	})
	update := newCmd("update ACTION_NAME [ACTION]", "update an existing action, or create an action if it does not exist",
		func(cmd *cobra.Command, args []string) error { return actionCreateOrUpdate(cmd, args, true) })
	for _, c := range []*cobra.Command{create, update} {
		f := c.Flags()
		f.BoolVar(&actionOpts.native, "native", false, "treat ACTION as native action (zip file provides a compatible executable to run)")
		f.StringVar(&actionOpts.docker, "docker", "", "use provided docker image (a path on DockerHub) to run the action")
		f.BoolVar(&actionOpts.copy, "copy", false, "treat ACTION as the name of an existing action")
		f.BoolVar(&actionOpts.sequence, "sequence", false, "treat ACTION as comma separated sequence of actions to invoke")
		f.StringVar(&actionOpts.kind, "kind", "", "the `KIND` of the action runtime (example: swift:default, nodejs:default)")
		f.StringVar(&actionOpts.main, "main", "", "the name of the action entry point (function or fully-qualified method name when applicable)")
		f.IntVarP(&actionOpts.timeout, "timeout", "t", 60000, "the timeout `LIMIT` in milliseconds after which the action is terminated")
		f.IntVarP(&actionOpts.memory, "memory", "m", 256, "the maximum memory `LIMIT` in MB for the action")
		f.IntVarP(&actionOpts.logsize, "logsize", "l", 10, "the maximum log size `LIMIT` in MB for the action")
		f.IntVarP(&actionOpts.concurrency, "concurrency", "c", 1, "the maximum intra-container concurrent activation `LIMIT` for the action")
		f.StringVar(&actionOpts.web, "web", "", "treat ACTION as a web action, a raw HTTP web action, or as a standard action; yes | true = web action, raw = raw HTTP web action, no | false = standard action")
		addKeyValueFlags(c, true)
	}
	update.Flags().StringArrayVar(&actionOpts.delAnnotations, "del-annotation", nil, "the list of annotations to be deleted from the action, e.g. --del-annotation key1 --del-annotation key2")

	invoke := newCmd("invoke ACTION_NAME", "invoke action", actionInvoke)
	invoke.Flags().BoolVarP(&actionOpts.blocking, "blocking", "b", false, "blocking invoke")
	invoke.Flags().BoolVarP(&actionOpts.result, "result", "r", false, "blocking invoke; show only activation result (unless there is a failure)")
	addKeyValueFlags(invoke, false)

	get := newCmd("get ACTION_NAME [FIELD_FILTER | --summary | --url]", "get action", actionGet)
	get.Flags().BoolVarP(&actionOpts.summary, "summary", "s", false, "summarize action details; parameters with prefix \"*\" are bound, \"**\" are bound and finalized")
	get.Flags().BoolVarP(&actionOpts.url, "url", "r", false, "get action url")

	list := newCmd("list [ NAMESPACE | PACKAGE_NAME ]", "list all actions in a namespace or actions contained in a package", actionList)
	addListFlags(list, "actions", 30)

	actionCmd.AddCommand(create, update, invoke, get,
		newCmd("delete ACTION_NAME", "delete action", actionDelete), list)
	rootCmd.AddCommand(actionCmd)
}

func actionCreateOrUpdate(cmd *cobra.Command, args []string, update bool) error {
	required := "An action name and code artifact are required."
	if update {
		required = "An action name is required. A code artifact is optional."
	}
	if err := checkArgs(args, 1, 2, required); err != nil {
		return err
	}
	action, err := parseAction(cmd, args, update)
	if err == nil {
		action, err = addWebAnnotations(cmd, action, update)
	}
	if err != nil {
		return wrapUsage("Invalid argument(s). "+err.Error(), err)
	}
	if _, _, err := client.Actions.Insert(action, update); err != nil {
		return wrapUsage(fmt.Sprintf("Unable to create action '%s': %s", action.Name, err), err)
	}
	if update {
		okf("updated action %s", bold(action.Name))
	} else {
		okf("created action %s", bold(action.Name))
	}
	return nil
}

// argError is an error in the command's arguments (exit 2, with the usage hint).
func argError(msg string) error {
	return whisk.MakeWskError(fmt.Errorf("%s", msg), whisk.EXIT_CODE_ERR_USAGE, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
}

func parseAction(cmd *cobra.Command, args []string, update bool) (*whisk.Action, error) {
	qn, err := parseQName(args[0])
	if err != nil {
		return nil, err
	}
	client.Namespace = qn.namespace
	action := &whisk.Action{Name: qn.name, Namespace: qn.namespace}

	f := cmd.Flags()
	if f.Changed("memory") || f.Changed("logsize") || f.Changed("timeout") || f.Changed("concurrency") {
		action.Limits = &whisk.Limits{}
		if f.Changed("memory") {
			action.Limits.Memory = &actionOpts.memory
		}
		if f.Changed("logsize") {
			action.Limits.Logsize = &actionOpts.logsize
		}
		if f.Changed("timeout") {
			action.Limits.Timeout = &actionOpts.timeout
		}
		if f.Changed("concurrency") {
			action.Limits.Concurrency = &actionOpts.concurrency
		}
	}
	if len(paramArgs) > 0 {
		if action.Parameters, err = paramsKV(paramArgs); err != nil {
			return nil, err
		}
	}
	if len(annotArgs) > 0 {
		if action.Annotations, err = annotsKV(annotArgs); err != nil {
			return nil, err
		}
	}
	if actionOpts.kind != "" && actionOpts.docker != "" {
		return nil, whisk.MakeWskError(fmt.Errorf("Cannot specify both --kind and --docker at the same time."),
			whisk.NOT_ALLOWED, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
	}

	switch {
	case actionOpts.copy:
		if len(args) < 2 {
			return nil, argError("An action name and code artifact are required.")
		}
		src, err := parseQName(args[1])
		if err != nil {
			return nil, err
		}
		client.Namespace = src.namespace
		existing, _, err := client.Actions.Get(src.name, true)
		if err != nil {
			return nil, wrapUsage(fmt.Sprintf("Unable to get action '%s': %s", src.name, err), err)
		}
		client.Namespace = qn.namespace
		action.Exec = existing.Exec
		action.Parameters = append(action.Parameters, existing.Parameters...)
		action.Annotations = append(action.Annotations, existing.Annotations...)
	case actionOpts.sequence:
		if len(args) < 2 {
			return nil, argError("An action name and code artifact are required.")
		}
		action.Exec = &whisk.Exec{Kind: "sequence"}
		for _, component := range strings.Split(args[1], ",") {
			action.Exec.Components = append(action.Exec.Components, fullyQualified(component))
		}
	case len(args) > 1 || actionOpts.docker != "":
		if action.Exec, err = actionExec(args); err != nil {
			return nil, err
		}
	case !update:
		return nil, argError("An action name and code artifact are required.")
	}
	if update {
		action.DelAnnotations = actionOpts.delAnnotations
	}
	return action, nil
}

// kindByExtension maps a code file extension to the runtime family whose :default kind is used.
var kindByExtension = map[string]string{
	".swift": "swift", ".js": "nodejs", ".py": "python", ".jar": "java", ".php": "php",
	".rb": "ruby", ".rs": "rust", ".go": "go", ".balx": "ballerina",
}

// actionExec builds the exec from the code file (binary archives are sent base64-encoded) and
// the --kind, --main, --docker and --native flags.
func actionExec(args []string) (*whisk.Exec, error) {
	exec := &whisk.Exec{}
	ext := ""
	if len(args) == 2 {
		ext = filepath.Ext(args[1])
		code, err := readFile(args[1])
		if err != nil {
			return nil, err
		}
		if ext == ".zip" || ext == ".jar" || ext == ".balx" {
			code = base64.StdEncoding.EncodeToString([]byte(code))
		}
		exec.Code = &code
	} else if actionOpts.docker == "" {
		return nil, argError("An action name and code artifact are required.")
	}

	switch {
	case actionOpts.kind != "":
		exec.Kind = actionOpts.kind
	case actionOpts.docker != "" || actionOpts.native:
		exec.Kind = "blackbox"
		exec.Image = actionOpts.docker
		if actionOpts.native {
			exec.Image = "openwhisk/dockerskeleton"
		}
	case kindByExtension[ext] != "":
		exec.Kind = kindByExtension[ext] + ":default"
	case ext == ".zip":
		return nil, argError("creating an action from a .zip artifact requires specifying the action kind explicitly")
	default:
		return nil, argError(fmt.Sprintf("'%s' is not a supported action runtime", ext))
	}
	if actionOpts.main != "" {
		exec.Main = actionOpts.main
	} else if exec.Kind == "java" {
		return nil, argError("Java actions require --main to specify the fully-qualified name of the main class")
	}
	return exec, nil
}

// addWebAnnotations applies --web: web-export/raw-http/final annotations. Without -a on an update,
// the existing action's annotations are kept.
func addWebAnnotations(cmd *cobra.Command, action *whisk.Action, update bool) (*whisk.Action, error) {
	var existing *whisk.Action
	if update {
		var err error
		if existing, _, err = client.Actions.Get(action.Name, false); err != nil {
			if werr, ok := err.(*whisk.WskError); !ok || werr.ExitCode != whisk.EXIT_CODE_NOT_FOUND {
				return nil, wrapUsage(fmt.Sprintf("Unable to get action '%s': %s", action.Name, err), err)
			}
			existing = nil
		}
	}
	if !cmd.Flags().Changed("web") {
		return action, nil
	}
	var export, raw, final bool
	switch strings.ToLower(actionOpts.web) {
	case "yes", "true":
		export, final = true, true
	case "raw":
		export, raw, final = true, true, true
	case "no", "false":
	default:
		return nil, argError(fmt.Sprintf("Invalid argument '%s' for --web flag. Valid input consist of 'yes', 'true', 'raw', 'false', or 'no'.", actionOpts.web))
	}
	annots := action.Annotations
	if action.Annotations == nil && existing != nil {
		annots = annots.AppendKeyValueArr(existing.Annotations)
	}
	var kept whisk.KeyValueArr
	for _, kv := range annots {
		if kv.Key != "web-export" && kv.Key != "raw-http" && kv.Key != "final" {
			kept = append(kept, kv)
		}
	}
	kept = append(kept,
		whisk.KeyValue{Key: "web-export", Value: export},
		whisk.KeyValue{Key: "raw-http", Value: raw},
		whisk.KeyValue{Key: "final", Value: final})
	if existing != nil {
		if i := existing.Annotations.FindKeyValue("require-whisk-auth"); i >= 0 {
			kept = kept.AppendKeyValueArr(whisk.KeyValueArr{existing.Annotations[i]})
		}
	}
	augmented := *action
	augmented.Annotations = kept
	return &augmented, nil
}

func actionInvoke(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "An action name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	params, err := paramsMap(paramArgs)
	if err != nil {
		return err
	}
	blocking := actionOpts.blocking || actionOpts.result
	res, err := invokeAction(qn, params, blocking, actionOpts.result)
	return printInvocationResponse(qn, blocking, !actionOpts.result, res, err)
}

func invokeAction(qn *qname, params interface{}, blocking, result bool) (interface{}, error) {
	client.Namespace = qn.namespace
	res, _, err := client.Actions.Invoke(qn.name, params, blocking, result)
	return res, err
}

// printInvocationResponse prints an invocation: "ok: invoked ... with id ..." (unless header is
// false) and, when blocking, the activation or result JSON. A failed blocking invocation prints
// its activation on stderr; a blocking invocation still running (202) prints its id on stderr.
func printInvocationResponse(qn *qname, blocking, header bool, res interface{}, err error) error {
	if err == nil {
		printInvocationMsg(qn, blocking, header, res, color.Output)
		return nil
	}
	if !blocking {
		return invocationError(qn, err)
	}
	return printFailedBlockingInvocation(qn, header, res, err)
}

func printFailedBlockingInvocation(qn *qname, header bool, res interface{}, err error) error {
	werr, _ := err.(*whisk.WskError)
	switch {
	case werr != nil && werr.TimedOut:
		fmt.Fprintf(colorable.NewColorableStderr(), "%s invoked /%s/%s, but the request has not yet finished, with id %s\n",
			color.GreenString("ok:"), bold(qn.namespace), bold(qn.name), bold(responseField(res, "activationId")))
		return err
	case werr != nil && werr.ApplicationError:
		printInvocationMsg(qn, true, header, res, colorable.NewColorableStderr())
		return err
	}
	return invocationError(qn, err)
}

func invocationError(qn *qname, err error) error {
	return wrapUsage(fmt.Sprintf("Unable to invoke action '%s': %s", qn.name, err), err)
}

func printInvocationMsg(qn *qname, blocking, header bool, res interface{}, w io.Writer) {
	if header {
		fmt.Fprintf(w, "%s invoked /%s/%s with id %s\n", color.GreenString("ok:"),
			bold(qn.namespace), bold(qn.name), bold(responseField(res, "activationId")))
	}
	if blocking {
		printJSON(res, w)
	}
}

// responseField returns a top-level field of a JSON object response ("" when absent).
func responseField(res interface{}, field string) interface{} {
	if m, ok := res.(map[string]interface{}); ok {
		if v, ok := m[field]; ok {
			return v
		}
	}
	if a, ok := res.([]interface{}); ok {
		return a
	}
	return ""
}

func actionGet(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 2, "An action name is required."); err != nil {
		return err
	}
	field := ""
	if !actionOpts.url && !actionOpts.summary && len(args) > 1 {
		field = args[1]
		if !fieldExists(&whisk.Action{}, field) {
			return argError(fmt.Sprintf("Invalid field filter '%s'.", field))
		}
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	action, _, err := client.Actions.Get(qn.name, false)
	if err != nil {
		return wrapUsage(fmt.Sprintf("Unable to get action '%s': %s", qn.name, err), err)
	}
	switch {
	case actionOpts.url:
		u, err := action.ActionURL(properties.apihost, "/api", properties.apiversion, qn.pkg)
		if err != nil {
			return plainError(fmt.Sprintf("Invalid host address '%s': %s", properties.apihost, err))
		}
		okf("got action %s", bold(qn.entity))
		fmt.Println(u)
	case actionOpts.summary:
		printEntitySummary(fmt.Sprintf("%6s", "action"), fullName(action.Namespace, "", action.Name),
			stringValue(action.Annotations, "description"), paramUnion(action.Annotations, action.Parameters))
	case field != "":
		okf("got action %s, displaying field %s", bold(qn.name), bold(field))
		printField(action, field)
	default:
		okf("got action %s", bold(qn.name))
		printJSON(action)
	}
	return nil
}

func actionDelete(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "An action name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	if _, err := client.Actions.Delete(qn.name); err != nil {
		return wrapUsage(fmt.Sprintf("Unable to delete action '%s': %s", qn.name, err), err)
	}
	okf("deleted action %s", bold(qn.name))
	return nil
}

func actionList(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 0, 1, "An optional namespace is the only valid argument."); err != nil {
		return err
	}
	qn := &qname{}
	if len(args) == 1 {
		var err error
		if qn, err = parseQName(args[0]); err != nil {
			return err
		}
		client.Namespace = qn.namespace
	}
	options := &whisk.ActionListOptions{Skip: listOpts.skip, Limit: listOpts.limit}
	actions, _, err := client.Actions.List(qn.name, options)
	if err != nil {
		return wrapUsage(fmt.Sprintf("Unable to obtain the list of actions for namespace '%s': %s", clientNamespace(), err), err)
	}
	printList(printables(actions), "actions", listOpts.nameSort)
	return nil
}
