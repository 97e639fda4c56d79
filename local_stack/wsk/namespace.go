package main

import (
	"fmt"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/fatih/color"
	"github.com/spf13/cobra"
)

var namespaceCmd = &cobra.Command{Use: "namespace", Short: "work with namespaces"}

func init() {
	get := newCmd("get", "get triggers, actions, and rules in the registry for namespace", namespaceGet)
	get.Flags().BoolVarP(&listOpts.nameSort, "name-sort", "n", false, "sorts a list alphabetically by entity name; only applicable within the limit/skip returned entity block")
	namespaceCmd.AddCommand(newCmd("list", "list available namespaces", namespaceList), get)

	list := newCmd("list", "list entities in the current namespace", namespaceGet)
	list.Flags().BoolVarP(&listOpts.nameSort, "name-sort", "n", false, "sorts a list alphabetically by entity name; only applicable within the limit/skip returned entity block")
	rootCmd.AddCommand(namespaceCmd, list)
}

func namespaceList(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 0, 0, "No arguments are required."); err != nil {
		return err
	}
	namespaces, _, err := client.Namespaces.List()
	if err != nil {
		return wrap(fmt.Sprintf("Unable to obtain the list of available namespaces: %s", err), err)
	}
	printList(printables(namespaces), "namespaces", false)
	return nil
}

// namespaceGet lists the packages, actions, triggers and rules of the namespace (`wsk list` too).
func namespaceGet(cmd *cobra.Command, args []string) error {
	if !(len(args) == 1 && args[0] == "/_") {
		if err := checkArgs(args, 0, 0, "No arguments are required."); err != nil {
			return err
		}
	}
	ns := clientNamespace()
	listErr := func(err error) error {
		return wrap(fmt.Sprintf("Unable to obtain the list of entities for namespace '%s': %s", ns, err), err)
	}
	actions, _, err := client.Actions.List("", &whisk.ActionListOptions{})
	if err != nil {
		return listErr(err)
	}
	packages, _, err := client.Packages.List(&whisk.PackageListOptions{})
	if err != nil {
		return listErr(err)
	}
	triggers, _, err := client.Triggers.List(&whisk.TriggerListOptions{})
	if err != nil {
		return listErr(err)
	}
	rules, _, err := client.Rules.List(&whisk.RuleListOptions{})
	if err != nil {
		return listErr(err)
	}
	if err := addRuleStatus(rules); err != nil {
		return err
	}
	fmt.Fprintf(color.Output, "Entities in namespace: %s\n", bold(clientNamespace()))
	printList(printables(packages), "packages", listOpts.nameSort)
	printList(printables(actions), "actions", listOpts.nameSort)
	printList(printables(triggers), "triggers", listOpts.nameSort)
	printList(printables(rules), "rules", listOpts.nameSort)
	return nil
}
