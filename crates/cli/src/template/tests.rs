//! The outputs Go's text/template (as Docker runs it) gives for the same
//! templates over the same documents.

use serde_json::json;

use super::Template;

fn doc() -> serde_json::Value {
    json!({
        "Id": "abc",
        "Config": {
            "Env": ["PATH=/bin", "X=1"],
            "Labels": {"b": "2", "a": "1"},
            "User": "",
            "Cmd": null,
            "ExposedPorts": {"80/tcp": {}},
        },
        "State": {"Running": true, "ExitCode": 0, "Pid": 4242},
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.213.0.2"}, "web": {"IPAddress": "10.214.0.3"}}},
        "Mounts": [],
        "Size": 1.5,
    })
}

fn render(t: &str) -> String {
    Template::parse(t).unwrap().render(&doc()).unwrap()
}

fn fails(t: &str) -> String {
    match Template::parse(t) {
        Err(e) => e.to_string(),
        Ok(tmpl) => tmpl.render(&doc()).expect_err(t).to_string(),
    }
}

#[test]
fn fields_print_as_gos_percent_v() {
    assert_eq!(
        render("{{.Id}} {{.State.Pid}} {{.State.Running}}"),
        "abc 4242 true"
    );
    assert_eq!(render("{{.Config.Env}}"), "[PATH=/bin X=1]");
    assert_eq!(render("{{.Config.Labels}}"), "map[a:1 b:2]");
    assert_eq!(render("{{.Config.Cmd}}"), "<nil>");
    assert_eq!(render("{{.Mounts}}"), "[]");
    assert_eq!(render("{{.Size}}"), "1.5");
    assert!(render("{{.}}").starts_with("map[Config:map[Cmd:<nil> Env:[PATH=/bin X=1]"));
}

#[test]
fn functions_docker_users_write() {
    assert_eq!(render("{{json .Config.Env}}"), r#"["PATH=/bin","X=1"]"#);
    assert_eq!(render("{{json .Config.Labels}}"), r#"{"a":"1","b":"2"}"#);
    assert_eq!(render("{{index .Config.Labels \"b\"}}"), "2");
    assert_eq!(render("{{index .Config.Env 1}}"), "X=1");
    assert_eq!(render("{{len .Config.Env}}"), "2");
    assert_eq!(render("{{join .Config.Env \",\"}}"), "PATH=/bin,X=1");
    assert_eq!(render("{{split \"a:b\" \":\"}}"), "[a b]");
    assert_eq!(
        render("{{upper .Id}} {{lower \"AB\"}} {{title \"hello world\"}}"),
        "ABC ab Hello World"
    );
    assert_eq!(render("{{.Id | upper}}"), "ABC");
    assert_eq!(render("{{truncate .Id 2}}"), "ab");
    assert_eq!(
        render("{{printf \"%s-%d|%5s|%-4s|\" .Id .State.Pid \"x\" \"y\"}}"),
        "abc-4242|    x|y   |"
    );
    assert_eq!(render("{{print 1 2 \"a\" \"b\"}}"), "1 2ab");
    assert_eq!(render("{{println .Id}}"), "abc\n");
    assert_eq!(
        render("{{index .NetworkSettings.Networks \"web\" | json}}"),
        r#"{"IPAddress":"10.214.0.3"}"#
    );
}

#[test]
fn control_structures() {
    assert_eq!(
        render("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"),
        "10.213.0.2 10.214.0.3 "
    );
    assert_eq!(
        render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
        "a=1;b=2;"
    );
    assert_eq!(
        render("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}"),
        "0:PATH=/bin 1:X=1 "
    );
    assert_eq!(render("{{range .Mounts}}x{{else}}none{{end}}"), "none");
    assert_eq!(render("{{if .State.Running}}up{{else}}down{{end}}"), "up");
    assert_eq!(
        render(
            "{{if gt .State.Pid 5000}}big{{else if eq .State.Pid 4242}}4242{{else}}small{{end}}"
        ),
        "4242"
    );
    assert_eq!(
        render("{{if and .State.Running (not .Config.User)}}root{{end}}"),
        "root"
    );
    assert_eq!(render("{{with .Config}}{{.Env}}{{end}}"), "[PATH=/bin X=1]");
    assert_eq!(render("{{with .Config.User}}u{{else}}none{{end}}"), "none");
    assert_eq!(
        render("{{$id := .Id}}{{range .Config.Env}}{{$id}}{{end}}"),
        "abcabc"
    );
    assert_eq!(render("{{range .Config.Env}}{{$.Id}}{{end}}"), "abcabc");
    assert_eq!(render("a {{- \" b \" -}} c"), "a b c");
    assert_eq!(render("{{/* a comment */}}x"), "x");
    assert_eq!(render("{{(index .Config.Env 0)}}"), "PATH=/bin");
    assert_eq!(
        render("{{eq .Id \"x\" \"abc\"}} {{ne 1 2}} {{lt \"a\" \"b\"}}"),
        "true true true"
    );
}

#[test]
fn mistakes_fail_with_a_sentence() {
    assert!(
        fails("{{.Nope}}").contains(r#"map has no entry for key "Nope""#),
        "{}",
        fails("{{.Nope}}")
    );
    assert!(fails("{{.Id.X}}").contains("can't evaluate field X"));
    assert!(fails("{{nosuch .Id}}").contains(r#"function "nosuch" not defined"#));
    assert!(fails("{{if .Id}}x").contains("missing {{end}}"));
    assert!(fails("{{.Id").contains("unclosed action"));
    assert!(fails("{{end}}").contains("unexpected"));
    assert!(fails("{{template \"x\"}}").contains("not supported"));
    assert!(fails("{{$nope}}").contains("undefined variable"));
}

#[test]
fn tables_align_like_dockers_tabwriter() {
    let lines = vec![
        "NAMES\tIMAGE".to_string(),
        "web\tbusybox:latest".to_string(),
    ];
    assert_eq!(
        super::align(&lines),
        "NAMES     IMAGE\nweb       busybox:latest\n"
    );
}

#[test]
fn json_escapes_html_characters_as_go_does() {
    let v = serde_json::json!({"Digest": "<none>", "A": "x&y"});
    assert_eq!(
        super::go_json(&v),
        r#"{"A":"x\u0026y","Digest":"\u003cnone\u003e"}"#
    );
}
