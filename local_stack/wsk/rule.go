package main

import (
	"fmt"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/fatih/color"
	"github.com/spf13/cobra"
)

var ruleOpts struct {
	disable, summary bool
}

var ruleCmd = &cobra.Command{Use: "rule", Short: "work with rules"}

func init() {
	create := newCmd("create RULE_NAME TRIGGER_NAME ACTION_NAME", "create new rule", func(cmd *cobra.Command, args []string) error {
		return ruleCreateOrUpdate(args, false)
	})
	update := newCmd("update RULE_NAME TRIGGER_NAME ACTION_NAME", "update an existing rule, or create a rule if it does not exist",
		func(cmd *cobra.Command, args []string) error { return ruleCreateOrUpdate(args, true) })
	enable := newCmd("enable RULE_NAME", "enable rule", func(cmd *cobra.Command, args []string) error {
		return ruleSetState(args, "active", "enable", "enabled")
	})
	disable := newCmd("disable RULE_NAME", "disable rule", func(cmd *cobra.Command, args []string) error {
		return ruleSetState(args, "inactive", "disable", "disabled")
	})

	get := newCmd("get RULE_NAME", "get rule", ruleGet)
	get.Flags().BoolVarP(&ruleOpts.summary, "summary", "s", false, "summarize rule details")

	del := newCmd("delete RULE_NAME", "delete rule", ruleDelete)
	del.Flags().BoolVar(&ruleOpts.disable, "disable", false, "automatically disable rule before deleting it")

	list := newCmd("list [NAMESPACE]", "list all rules", ruleList)
	addListFlags(list, "rules", 30)

	ruleCmd.AddCommand(create, enable, disable, newCmd("status RULE_NAME", "get rule status", ruleStatus),
		update, get, del, list)
	rootCmd.AddCommand(ruleCmd)
}

// ruleName parses the rule name argument and points the client at its namespace.
func ruleName(args []string) (string, error) {
	if err := checkArgs(args, 1, 1, "A rule name is required."); err != nil {
		return "", err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return "", err
	}
	client.Namespace = qn.namespace
	return qn.name, nil
}

func ruleCreateOrUpdate(args []string, update bool) error {
	if err := checkArgs(args, 3, 3, "A rule, trigger and action name are required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	rule := &whisk.Rule{Name: qn.name, Trigger: fullyQualified(args[1]), Action: fullyQualified(args[2])}
	if _, _, err := client.Rules.Insert(rule, update); err != nil {
		if update {
			return wrap(fmt.Sprintf("Unable to update rule '%s': %s", qn.name, err), err)
		}
		return wrap(fmt.Sprintf("Unable to create rule '%s': %s", qn.name, err), err)
	}
	if update {
		okf("updated rule %s", bold(qn.name))
	} else {
		okf("created rule %s", bold(qn.name))
	}
	return nil
}

func ruleSetState(args []string, state, verb, done string) error {
	name, err := ruleName(args)
	if err != nil {
		return err
	}
	if _, _, err := client.Rules.SetState(name, state); err != nil {
		return wrap(fmt.Sprintf("Unable to %s rule '%s': %s", verb, name, err), err)
	}
	okf("%s rule %s", done, bold(name))
	return nil
}

func ruleStatus(cmd *cobra.Command, args []string) error {
	name, err := ruleName(args)
	if err != nil {
		return err
	}
	rule, _, err := client.Rules.Get(name)
	if err != nil {
		return wrapUsage(fmt.Sprintf("Unable to get status of rule '%s': %s", name, err), err)
	}
	okf("rule %s is %s", bold(name), bold(rule.Status))
	return nil
}

func ruleGet(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 2, "A rule name is required."); err != nil {
		return err
	}
	field := ""
	if len(args) > 1 {
		if field = args[1]; !fieldExists(&whisk.Rule{}, field) {
			return invalidFieldError(field)
		}
	}
	name, err := ruleName(args[:1])
	if err != nil {
		return err
	}
	rule, _, err := client.Rules.Get(name)
	if err != nil {
		return wrapUsage(fmt.Sprintf("Unable to get rule '%s': %s", name, err), err)
	}
	switch {
	case ruleOpts.summary:
		fmt.Fprintf(color.Output, "%s %s\n", bold(fmt.Sprintf("%4s", "rule")), fullName(rule.Namespace, "", rule.Name))
		fmt.Fprintf(color.Output, "   (%s: %s)\n", bold("status"), rule.Status)
	case field != "":
		okf("got rule %s, displaying field %s", bold(name), field)
		printField(rule, field)
	default:
		okf("got rule %s", bold(name))
		printJSON(rule)
	}
	return nil
}

func ruleDelete(cmd *cobra.Command, args []string) error {
	name, err := ruleName(args)
	if err != nil {
		return err
	}
	if ruleOpts.disable {
		if _, _, err := client.Rules.SetState(name, "inactive"); err != nil {
			return wrap(fmt.Sprintf("Unable to disable rule '%s': %s", name, err), err)
		}
	}
	if _, err := client.Rules.Delete(name); err != nil {
		return wrap(fmt.Sprintf("Unable to delete rule '%s': %s", name, err), err)
	}
	okf("deleted rule %s", bold(name))
	return nil
}

func ruleList(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 0, 1, "An optional namespace is the only valid argument."); err != nil {
		return err
	}
	if err := namespaceArg(args); err != nil {
		return err
	}
	rules, _, err := client.Rules.List(&whisk.RuleListOptions{Skip: listOpts.skip, Limit: listOpts.limit})
	if err != nil {
		return wrap(fmt.Sprintf("Unable to obtain the list of rules for namespace '%s': %s", clientNamespace(), err), err)
	}
	if err := addRuleStatus(rules); err != nil {
		return err
	}
	printList(printables(rules), "rules", listOpts.nameSort)
	return nil
}

// addRuleStatus gets each listed rule for its status, which the list does not carry.
func addRuleStatus(rules []whisk.Rule) error {
	for i := range rules {
		status, _, err := client.Rules.Get(rules[i].Name)
		if err != nil {
			msg := fmt.Sprintf("Unable to get status of rule '%s': %s", rules[i].Name, err)
			fmt.Println(msg)
			return wrap(msg, err)
		}
		rules[i].Status = status.Status
	}
	return nil
}
