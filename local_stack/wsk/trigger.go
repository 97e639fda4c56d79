package main

// Triggers, including the feed protocol: a trigger annotated with "feed" is configured by blocking
// invocations of the feed action with lifecycleEvent CREATE, READ, UPDATE or DELETE, triggerName
// /NAMESPACE/TRIGGER and authKey, plus the -p (or -F) parameters.

import (
	"errors"
	"fmt"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/fatih/color"
	"github.com/spf13/cobra"
)

var triggerOpts struct {
	feed    string
	summary bool
}

var triggerCmd = &cobra.Command{Use: "trigger", Short: "work with triggers"}

func init() {
	create := newCmd("create TRIGGER_NAME", "create new trigger", triggerCreate)
	update := newCmd("update TRIGGER_NAME", "update an existing an trigger, or create a trigger if it does not exist", triggerUpdate)
	for _, c := range []*cobra.Command{create, update} {
		addKeyValueFlags(c, true)
		var ignored []string
		c.Flags().StringSliceVarP(&ignored, "feed-param", "F", nil, "feed parameter values in `KEY VALUE` format")
		c.Flags().StringSliceVarP(&ignored, "trigger-param", "T", nil, "trigger parameter values in `KEY VALUE` format")
	}
	create.Flags().StringVarP(&triggerOpts.feed, "feed", "f", "", "trigger feed `ACTION_NAME`")

	get := newCmd("get TRIGGER_NAME [FIELD_FILTER]", "get trigger", triggerGet)
	get.Flags().BoolVarP(&triggerOpts.summary, "summary", "s", false, "summarize trigger details; parameters with prefix \"*\" are bound")

	fire := newCmd("fire TRIGGER_NAME [PAYLOAD]", "fire trigger event", triggerFire)
	addKeyValueFlags(fire, false)

	list := newCmd("list [NAMESPACE]", "list all triggers", triggerList)
	addListFlags(list, "triggers", 30)

	triggerCmd.AddCommand(fire, create, update, get, newCmd("delete TRIGGER_NAME", "delete trigger", triggerDelete), list)
	rootCmd.AddCommand(triggerCmd)
}

// feedArgs are the lifecycle parameters the CLI adds for the feed action.
func feedArgs(event string, trigger *qname) []string {
	return []string{
		formattedJSON("lifecycleEvent", event),
		formattedJSON("triggerName", fmt.Sprintf("/%s/%s", trigger.namespace, trigger.name)),
		formattedJSON("authKey", client.Config.AuthToken),
	}
}

// oldStyleTrigger: -p (or no parameters at all) rather than -F/-T.
func oldStyleTrigger() bool {
	return len(paramArgs) > 0 || (len(feedParamArgs) == 0 && len(triggerParamArgs) == 0)
}

func triggerCreate(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "A trigger name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	oldStyle := oldStyleTrigger()
	if oldStyle && (len(feedParamArgs) > 0 || len(triggerParamArgs) > 0) {
		return whisk.MakeWskError(errors.New("Incorrect usage. Cannot combine --feed-param or --trigger-param flag with neither --param nor --param-file flag"),
			whisk.NOT_ALLOWED, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
	}

	var feed *qname
	annotations := annotArgs
	if triggerOpts.feed != "" {
		if feed, err = parseQName(triggerOpts.feed); err != nil {
			return err
		}
		annotations = append(append([]string{}, annotations...), formattedJSON("feed", feed.full()))
	}
	annots, err := annotsKV(annotations)
	if err != nil {
		return err
	}
	trigger := &whisk.Trigger{Name: qn.name, Annotations: annots}

	// Old style: without a feed the -p parameters are bound to the trigger, with a feed they go
	// only to the feed. New style: -T parameters are bound to the trigger, -F go to the feed.
	feedParams := paramArgs
	if oldStyle {
		if feed == nil {
			if trigger.Parameters, err = paramsKV(paramArgs); err != nil {
				return err
			}
		}
	} else {
		if feed == nil && len(feedParamArgs) > 0 {
			return whisk.MakeWskError(errors.New("Incorrect usage. Trigger without a feed cannot have feed parameters"),
				whisk.NOT_ALLOWED, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
		}
		if trigger.Parameters, err = paramsKV(triggerParamArgs); err != nil {
			return err
		}
		feedParams = feedParamArgs
	}
	var params map[string]interface{}
	if feed != nil {
		if params, err = paramsMap(append(append([]string{}, feedParams...), feedArgs("CREATE", qn)...)); err != nil {
			return err
		}
	}

	client.Namespace = qn.namespace
	if _, _, err := client.Triggers.Insert(trigger, false); err != nil {
		return wrap(fmt.Sprintf("Unable to create trigger '%s': %s", trigger.Name, err), err)
	}

	if feed != nil {
		res, err := invokeAction(feed, params, true, false)
		if err != nil {
			// Show the failed activation, delete the trigger again, and fail.
			_ = printFailedBlockingInvocation(feed, false, res, err)
			reason := fmt.Sprintf("Unable to configure feed '%s': %s", feed.full(), err)
			werr := wrap(fmt.Sprintf("Unable to create trigger '%s': %s", trigger.Name, reason), err)
			_ = triggerDelete(cmd, []string{qn.name})
			return werr
		}
		printInvocationMsg(feed, true, true, res, color.Output)
	}
	okf("created trigger %s", bold(trigger.Name))
	return nil
}

// configureFeed invokes the feed action (blocking) and prints its activation.
func configureFeed(feedName string, params interface{}) error {
	feed, err := parseQName(feedName)
	if err != nil {
		return err
	}
	res, err := invokeAction(feed, params, true, false)
	if err = printInvocationResponse(feed, true, false, res, err); err != nil {
		return wrapUsage(fmt.Sprintf("Unable to configure feed '%s': %s", feedName, err), err)
	}
	return nil
}

func triggerUpdate(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "A trigger name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	params, err := paramsKV(paramArgs)
	if err != nil {
		return err
	}
	annots, err := annotsKV(annotArgs)
	if err != nil {
		return err
	}

	existing, resp, err := client.Triggers.Get(qn.name)
	if err != nil && resp != nil && resp.StatusCode == 404 {
		return triggerCreate(cmd, args)
	} else if err != nil {
		return wrap(fmt.Sprintf("Unable to get trigger '%s': %s", qn.name, err), err)
	}
	feedName := stringValue(existing.Annotations, "feed")

	if !oldStyleTrigger() {
		return triggerUpdateExtended(qn, feedName)
	}
	if len(feedParamArgs) > 0 || len(triggerParamArgs) > 0 {
		return whisk.MakeWskError(errors.New("Incorrect usage. Cannot combine --feed-param or --trigger-param flag with neither --param nor --param-file flag"),
			whisk.NOT_ALLOWED, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
	}
	if feedName != "" {
		// With a feed, only the feed is told; the trigger itself is not updated.
		feedParams, err := paramsMap(append(append([]string{}, paramArgs...), feedArgs("UPDATE", qn)...))
		if err != nil {
			return err
		}
		if err := configureFeed(feedName, feedParams); err != nil {
			return wrap(fmt.Sprintf("Unable to create trigger '%s': %s", qn.name, err), err)
		}
	} else {
		trigger := &whisk.Trigger{Name: qn.name, Parameters: params, Annotations: annots}
		if _, _, err := client.Triggers.Insert(trigger, true); err != nil {
			return wrap(fmt.Sprintf("Unable to update trigger '%s': %s", trigger.Name, err), err)
		}
	}
	okf("updated trigger %s", bold(qn.name))
	return nil
}

// triggerUpdateExtended is update with -T (stored on the trigger) and -F (sent to the feed).
func triggerUpdateExtended(qn *qname, feedName string) error {
	params, err := paramsKV(triggerParamArgs)
	if err != nil {
		return err
	}
	annots, err := annotsKV(annotArgs)
	if err != nil {
		return err
	}
	trigger := &whisk.Trigger{Name: qn.name, Parameters: params, Annotations: annots}
	if _, _, err := client.Triggers.Insert(trigger, true); err != nil {
		return wrap(fmt.Sprintf("Unable to update trigger '%s': %s", trigger.Name, err), err)
	}
	if feedName == "" && len(feedParamArgs) > 0 {
		err := errors.New("this trigger does not contain a feed")
		return wrap(fmt.Sprintf("Unable to configure feed '%s': %s", qn.name, err), err)
	}
	if feedName != "" && len(feedParamArgs) > 0 {
		feedParams, err := paramsMap(append(append([]string{}, feedParamArgs...), feedArgs("UPDATE", qn)...))
		if err != nil {
			return err
		}
		if err := configureFeed(feedName, feedParams); err != nil {
			return wrap(fmt.Sprintf("Unable to create trigger '%s': %s", qn.name, err), err)
		}
	}
	okf("updated trigger %s", bold(qn.name))
	return nil
}

func triggerGet(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 2, "A trigger name is required."); err != nil {
		return err
	}
	field := ""
	if len(args) > 1 {
		if field = args[1]; !fieldExists(&whisk.Trigger{}, field) {
			return invalidFieldError(field)
		}
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	trigger, _, err := client.Triggers.Get(qn.name)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to get trigger '%s': %s", qn.name, err), err)
	}
	if feedName := stringValue(trigger.Annotations, "feed"); feedName != "" {
		// With a feed, the feed's READ activation is shown instead; its failure is not an error.
		params, err := paramsMap(append(append([]string{}, paramArgs...), feedArgs("READ", qn)...))
		if err != nil {
			return err
		}
		_ = configureFeed(feedName, params)
		return nil
	}
	switch {
	case triggerOpts.summary:
		printEntitySummary(fmt.Sprintf("%7s", "trigger"), fullName(trigger.Namespace, "", trigger.Name),
			stringValue(trigger.Annotations, "description"), paramUnion(trigger.Annotations, trigger.Parameters))
	case field != "":
		okf("got trigger %s, displaying field %s", bold(qn.name), bold(field))
		printField(trigger, field)
	default:
		okf("got trigger %s", bold(qn.name))
		printJSON(trigger)
	}
	return nil
}

func triggerDelete(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "A trigger name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	trigger, _, err := client.Triggers.Get(qn.name)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to get trigger '%s': %s", qn.name, err), err)
	}
	if feedName := stringValue(trigger.Annotations, "feed"); feedName != "" {
		// Tell the feed first; its failure does not stop the delete.
		params, err := paramsMap(append(append([]string{}, paramArgs...), feedArgs("DELETE", qn)...))
		if err != nil {
			return err
		}
		_ = configureFeed(feedName, params)
		client.Namespace = qn.namespace
	}
	if _, _, err := client.Triggers.Delete(qn.name); err != nil {
		return wrap(fmt.Sprintf("Unable to delete trigger '%s': %s", qn.name, err), err)
	}
	okf("deleted trigger %s", bold(qn.name))
	return nil
}

func triggerFire(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "A trigger name is required."); err != nil {
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
	client.Namespace = qn.namespace
	res, _, err := client.Triggers.Fire(qn.name, params)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to fire trigger '%s': %s", qn.name, err), err)
	}
	okf("triggered /%s/%s with id %s", bold(qn.namespace), bold(qn.name), bold(res.ActivationId))
	return nil
}

func triggerList(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 0, 1, "An optional namespace is the only valid argument."); err != nil {
		return err
	}
	if err := namespaceArg(args); err != nil {
		return err
	}
	triggers, _, err := client.Triggers.List(&whisk.TriggerListOptions{Skip: listOpts.skip, Limit: listOpts.limit})
	if err != nil {
		return wrap(fmt.Sprintf("Unable to obtain the list of triggers for namespace '%s': %s", clientNamespace(), err), err)
	}
	printList(printables(triggers), "triggers", listOpts.nameSort)
	return nil
}
