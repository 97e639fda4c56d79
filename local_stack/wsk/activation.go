package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/spf13/cobra"
)

var activationOpts struct {
	full, summary, last, logs, strip bool
	since, upto                      int64
}

var activationCmd = &cobra.Command{Use: "activation", Short: "work with activations"}

func init() {
	list := newCmd("list [NAMESPACE or NAME]", "list activations", activationList)
	addListFlags(list, "activations", 30)
	list.Flags().BoolVarP(&activationOpts.full, "full", "f", false, "include full activation description")
	list.Flags().Int64Var(&activationOpts.upto, "upto", 0, "return activations with timestamps earlier than `UPTO`; measured in milliseconds since Th, 01, Jan 1970")
	list.Flags().Int64Var(&activationOpts.since, "since", 0, "return activations with timestamps later than `SINCE`; measured in milliseconds since Th, 01, Jan 1970")

	get := newCmd("get (ACTIVATION_ID | --last) [FIELD_FILTER]", "get activation", activationGet)
	get.Flags().BoolVarP(&activationOpts.summary, "summary", "s", false, "summarize activation details")
	get.Flags().BoolVarP(&activationOpts.logs, "logs", "g", false, "emit only the logs, stripped of time stamps and stream identifier")

	logs := newCmd("logs (ACTIVATION_ID | --last)", "get the logs of an activation", activationLogs)
	logs.Flags().BoolVarP(&activationOpts.strip, "strip", "r", false, "strip timestamp and stream information")

	result := newCmd("result (ACTIVATION_ID | --last)", "get the result of an activation", activationResult)

	for _, c := range []*cobra.Command{get, logs, result} {
		c.Flags().BoolVarP(&activationOpts.last, "last", "l", false, "retrieves the last activation")
	}
	activationCmd.AddCommand(list, get, logs, result)
	rootCmd.AddCommand(activationCmd)
}

func activationList(cmd *cobra.Command, args []string) error {
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
	options := &whisk.ActivationListOptions{
		Name: qn.name, Limit: listOpts.limit, Skip: listOpts.skip,
		Upto: activationOpts.upto, Since: activationOpts.since, Docs: activationOpts.full,
	}
	activations, _, err := client.Activations.List(options)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to obtain the list of activations for namespace '%s': %s", clientNamespace(), err), err)
	}
	if options.Docs {
		fmt.Printf("%s\n", bold("activations"))
		for _, a := range activations {
			printJSON(a)
		}
		return nil
	}
	// Kind and Status columns are as wide as their longest value.
	kindWidth, statusWidth := len("Kind"), len(whisk.StatusCodes[0])
	for _, a := range activations {
		kind, ok := a.Annotations.GetValue("kind").(string)
		if !ok {
			kind = "unknown"
		}
		kindWidth = max(kindWidth, len(kind))
		if a.StatusCode > 0 && a.StatusCode < len(whisk.StatusCodes) {
			statusWidth = max(statusWidth, len(whisk.StatusCodes[a.StatusCode]))
		}
	}
	kw, sw := strconv.Itoa(kindWidth), strconv.Itoa(statusWidth)
	headerFmt := "%-19s %-32s %-" + kw + "s %-6s%-10s %-" + sw + "s %-6s\n"
	rowFmt := "%d-%02d-%02d %02d:%02d:%02d %-32s %-" + kw + "s %-5s %-10v %-" + sw + "s %-"
	items := make([]whisk.Printable, len(activations))
	for i := range activations {
		items[i] = whisk.ActivationFilteredRow{Row: activations[i], HeaderFmt: headerFmt, RowFmt: rowFmt}
	}
	printList(items, "", false)
	return nil
}

// activationID returns the ID argument, or with --last the ID of the newest activation.
func activationID(args []string, what string) (string, []string, error) {
	if activationOpts.last {
		list, _, err := client.Activations.List(&whisk.ActivationListOptions{Limit: 1})
		if err != nil {
			return "", nil, wrap(fmt.Sprintf("Unable to get %s: %s", what, err), err)
		}
		if len(list) == 0 {
			err := usageError("Activation list does not contain any activations.")
			return "", nil, wrap(fmt.Sprintf("Unable to get %s: %s", what, err), err)
		}
		args = append([]string{list[0].ActivationID}, args...)
	}
	if len(args) == 0 {
		return "", nil, usageError("Invalid argument(s). An activation ID is required.")
	}
	return args[0], args, nil
}

func activationGet(cmd *cobra.Command, args []string) error {
	id, args, err := activationID(args, "activation")
	if err != nil {
		return err
	}
	if err := checkArgs(args, 1, 2, "An activation ID is required."); err != nil {
		return err
	}
	field := ""
	if len(args) > 1 {
		if field = args[1]; !fieldExists(&whisk.Activation{}, field) {
			return invalidFieldError(field)
		}
	}
	activation, _, err := client.Activations.Get(id)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to get activation '%s': %s", id, err), err)
	}
	switch {
	case activationOpts.summary:
		fmt.Printf("activation result for '/%s/%s' (%s at %s)\n", activation.Namespace, activation.Name,
			activation.Response.Status, time.Unix(activation.End/1000, 0))
		printJSON(activation.Response.Result)
	case activationOpts.logs:
		for _, line := range activation.Logs {
			fmt.Printf("%s\n", stripTimestamp(line))
		}
	case field != "":
		okf("got activation %s, displaying field %s", bold(id), bold(field))
		printField(activation, field)
	default:
		okf("got activation %s", bold(id))
		printJSON(activation)
	}
	return nil
}

func activationLogs(cmd *cobra.Command, args []string) error {
	id, args, err := activationID(args, "logs for activation")
	if err != nil {
		return err
	}
	if err := checkArgs(args, 1, 1, "An activation ID is required."); err != nil {
		return err
	}
	activation, _, err := client.Activations.Logs(id)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to get logs for activation '%s': %s", id, err), err)
	}
	for _, line := range activation.Logs {
		if activationOpts.strip {
			line = stripTimestamp(line)
		}
		fmt.Printf("%s\n", line)
	}
	return nil
}

func activationResult(cmd *cobra.Command, args []string) error {
	id, args, err := activationID(args, "result for activation")
	if err != nil {
		return err
	}
	if err := checkArgs(args, 1, 1, "An activation ID is required."); err != nil {
		return err
	}
	result, _, err := client.Activations.Result(id)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to get result for activation '%s': %s", id, err), err)
	}
	printJSON(result.Result)
	return nil
}
