"""Expressions evaluate to what C# gives, against the fixed fixture in `fixtures.py`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certgate.expressions import ExpressionRuntimeError, compile_expression
from tests.expressions.contexts import (
    CLIENT,
    DEPLOYED,
    REQUEST_BODY,
    STRANGER,
    build_context,
    certificate,
)

CASES: list[tuple[str, object]] = [
    # operators and literals
    ("@(1 + 2 * 3)", 7),
    ("@(7 / 2)", 3),
    ("@(-7 / 2)", -3),
    ("@(-7 % 3)", -1),
    ("@(7.0 / 2)", 3.5),
    ("@(1 / 2.0 + 0.25)", 0.75),
    ('@("n=" + 5 + true)', "n=5True"),
    ('@("a" + null + 1.5)', "a1.5"),
    ("@(0x10 + 10L)", 26),
    ("@(5 > 3 && !(2 >= 4) || false)", True),
    ("@(1 << 4 | 1)", 17),
    ("@(6 & 3 ^ 1)", 3),
    ("@((true ? 1 : 2) + (false ? 1 : 2))", 3),
    ('@(null ?? "fallback")', "fallback"),
    ("@((string)null == null)", True),
    ('@("abc" == "ab" + "c")', True),
    ('@("ABC" != "abc")', True),
    ("@((int)3.99)", 3),
    ("@((int)-3.99)", -3),
    ("@((byte)300)", 44),
    ("@((long)int.MaxValue + 1)", 2147483648),
    ("@(int.MaxValue + 1)", -2147483648),
    ("@(2147483647L + 1)", 2147483648),
    ("@{ int x = int.MaxValue; x += 1; return x; }", -2147483648),
    ("@{ var x = 0x7fffffff; x++; return x; }", -2147483648),
    ("@(((int)65535 & 0xFFFF) << 16)", -65536),
    ("@(1 << 31)", -2147483648),
    ("@(-5 >> 1)", -3),
    ("@((double)1 / 4)", 0.25),
    ("@('a' + 1)", 98),
    ("@((int)'A')", 65),
    ("@(1.0.ToString())", "1"),
    ("@(0.1 + 0.2)", 0.30000000000000004),
    ("@((0.1 + 0.2).ToString())", "0.30000000000000004"),
    ("@(1e21.ToString())", "1E+21"),
    ("@(true.ToString())", "True"),
    ('@(12.ToString("D5"))', "00012"),
    ('@(255.ToString("X2"))', "FF"),
    ('@(3.14159.ToString("F2"))', "3.14"),
    ('@(1234567.891.ToString("N1"))', "1,234,567.9"),
    ('@(5.ToString("0.00"))', "5.00"),
    ("@(Math.Round(2.5))", 2.0),
    ("@(Math.Round(3.5))", 4.0),
    ("@(Math.Max(3, 9) - Math.Abs(-2))", 7),
    # strings
    ("@(\"a,b,,c\".Split(',').Length)", 4),
    ('@("a,b,,c".Split(new[] {","}, StringSplitOptions.RemoveEmptyEntries).Length)', 3),
    ("@(\"k=v=w\".Split(new[] {'='}, 2)[1])", "v=w"),
    ('@("Hello".Substring(1, 3))', "ell"),
    ('@("Hello".ToUpperInvariant() + "Hello".ToLower())', "HELLOhello"),
    ('@("  x ".Trim() + "|" + "xxay".TrimStart(\'x\') + "|" + "/p/".TrimEnd(\'/\'))', "x|ay|/p"),
    ('@("Hello".IndexOf("l") + "Hello".LastIndexOf(\'l\'))', 5),
    (
        '@("Hello".Contains("ell") && "Hello".StartsWith("he", StringComparison.OrdinalIgnoreCase))',  # noqa: E501
        True,
    ),
    ('@("Hello".EndsWith("LO"))', False),
    ('@("a-b-c".Replace("-", "+"))', "a+b+c"),
    ('@("7".PadLeft(3, \'0\') + "|" + "ab".PadRight(4) + "|")', "007|ab  |"),
    ('@("abc"[1])', "b"),
    ('@("abc".Length)', 3),
    (
        '@(string.IsNullOrEmpty("") && string.IsNullOrWhiteSpace("  ") && !string.IsNullOrEmpty("x"))',  # noqa: E501
        True,
    ),
    ('@(string.Join(",", new List<string> { "a", "b" }))', "a,b"),
    ('@(string.Format("{0}-{1:D2}-{0}", "x", 7))', "x-07-x"),
    ('@(String.Concat("a", 1, true))', "a1True"),
    ('@("abc".Equals("ABC", StringComparison.OrdinalIgnoreCase))', True),
    ('@($"n={1 + 1}, s={"x",3}|{3.5:F2}")', "n=2, s=  x|3.50"),
    ('@($"{{literal}} {true}")', "{literal} True"),
    ('@(@"c:\\dir\\""q""")', 'c:\\dir\\"q"'),
    ('@("tab\\there".Length)', 8),
    ("@(string.Empty.Length)", 0),
    ("@(new string('-', 3))", "---"),
    # parsing and conversion
    ('@(int.Parse("42") + 1)', 43),
    ('@(int.TryParse("x", out var v) ? v : -1)', -1),
    ('@(long.Parse(" -9 "))', -9),
    ('@(double.Parse("2.5") * 2)', 5.0),
    ('@(bool.Parse("TRUE"))', True),
    ('@(Convert.ToBase64String(Encoding.UTF8.GetBytes("hé")))', "aMOp"),
    ('@(Encoding.UTF8.GetString(Convert.FromBase64String("aMOp")))', "hé"),
    ('@(Convert.ToInt32("12") + Convert.ToInt32(2.5) + Convert.ToInt32(3.5))', 18),
    ("@(Convert.ToString(255, 16))", "ff"),
    ("@(BitConverter.ToString(new byte[] { 1, 171 }))", "01-AB"),
    ('@(Convert.ToBoolean("false"))', False),
    # DateTime / TimeSpan
    (
        '@(new DateTime(2024, 3, 5, 7, 8, 9).ToString("yyyy-MM-ddTHH:mm:ssZ"))',
        "2024-03-05T07:08:09Z",
    ),
    (
        '@(new DateTime(2024, 3, 5, 7, 8, 9, DateTimeKind.Utc).ToString("o"))',
        "2024-03-05T07:08:09.0000000Z",
    ),
    ('@(new DateTime(2024, 3, 5, 7, 8, 9).ToString("r"))', "Tue, 05 Mar 2024 07:08:09 GMT"),
    (
        '@(new DateTime(2024, 3, 5, 17, 8, 9).ToString("dddd MMM d h:mm tt"))',
        "Tuesday Mar 5 5:08 PM",
    ),
    ("@(new DateTime(2024, 3, 5).ToString())", "3/5/2024 12:00:00 AM"),
    ("@(new DateTime(2024, 1, 31).AddMonths(1).Day)", 29),
    ('@(new DateTime(2024, 3, 5).AddDays(-5).ToString("yyyy-MM-dd"))', "2024-02-29"),
    ("@((new DateTime(2024, 3, 5) - new DateTime(2024, 3, 1)).TotalHours)", 96.0),
    ("@(new DateTime(2024, 3, 5) > new DateTime(2024, 3, 1))", True),
    ('@(DateTime.Parse("2024-03-05T07:08:09").Hour)', 7),
    ("@(TimeSpan.FromMinutes(90).ToString())", "01:30:00"),
    ("@(TimeSpan.FromSeconds(90061.5).ToString())", "1.01:01:01.5000000"),
    ("@(new TimeSpan(1, 2, 3).TotalSeconds)", 3723.0),
    ("@(DateTimeOffset.FromUnixTimeSeconds(86400).ToUnixTimeMilliseconds())", 86400000),
    (
        "@(new DateTimeOffset(new DateTime(1970, 1, 2, 0, 0, 0, DateTimeKind.Utc)).ToUnixTimeSeconds())",  # noqa: E501
        86400,
    ),
    ("@(DateTime.UtcNow > DateTime.UtcNow.AddSeconds(-10))", True),
    ("@(DateTime.UtcNow.Kind.ToString())", "Utc"),
    # Guid / Uri / web
    ("@(Guid.NewGuid().ToString().Length)", 36),
    (
        '@(Guid.Parse("0F8FAD5B-D9CB-469F-A165-70867728950E").ToString("N"))',
        "0f8fad5bd9cb469fa16570867728950e",
    ),
    ("@(new Guid(new byte[16]).ToString())", "00000000-0000-0000-0000-000000000000"),
    ('@(Uri.EscapeDataString("a b/c?d=é"))', "a%20b%2Fc%3Fd%3D%C3%A9"),
    ('@(System.Net.WebUtility.UrlEncode("a b&c"))', "a+b%26c"),
    ('@(WebUtility.UrlDecode("a+b%26c"))', "a b&c"),
    (
        '@(WebUtility.HtmlEncode("<a href=\\"x\\">\'</a>"))',
        "&lt;a href=&quot;x&quot;&gt;&#39;&lt;/a&gt;",
    ),
    ('@(new Uri("https://h.example:8443/a/b?q=1").Port)', 8443),
    ('@(new Uri("https://h.example/a/b?q=1").PathAndQuery)', "/a/b?q=1"),
    # Regex
    ('@(Regex.IsMatch("abc123", @"^[a-z]+\\d{3}$"))', True),
    ('@(Regex.Match("max-age=300, x", @"max-age=(?<age>\\d+)").Groups["age"].Value)', "300"),
    ('@(Regex.Replace("2024-03-05", @"(\\d+)-(\\d+)-(\\d+)", "$3/$2/$1"))', "05/03/2024"),
    ('@(Regex.Match("xyz", "a").Success)', False),
    ('@(new Regex("B", RegexOptions.IgnoreCase).IsMatch("abc"))', True),
    # LINQ and collections
    ("@(new[] {3, 1, 2}.OrderBy(x => x).First())", 1),
    ("@(new[] {3, 1, 2}.OrderByDescending(x => x).ToArray()[0])", 3),
    ("@(new[] {1, 2, 3, 4}.Where(x => x % 2 == 0).Sum())", 6),
    ("@(new[] {1, 2, 3}.Select(x => x * 10).Max())", 30),
    ("@(new[] {1, 2, 3}.Any(x => x > 2) && new[] {1, 2, 3}.All(x => x > 0))", True),
    ('@(new[] {"a", "b", "a"}.Distinct().Count())', 2),
    ('@(new[] {"a", "b"}.Contains("b"))', True),
    ('@(new[] {"x", "Y"}.Contains("y", StringComparer.OrdinalIgnoreCase))', True),
    ("@(new[] {1, 2, 3}.Skip(1).Take(1).Single())", 2),
    ("@(new int[0].FirstOrDefault())", None),
    ("@(new List<int> { 1, 2 }.Concat(new[] { 3 }).Count())", 3),
    ('@(new Dictionary<string, int> { { "a", 1 }, { "b", 2 } }["b"])', 2),
    ('@(new Dictionary<string, int> { ["a"] = 1 }.ContainsKey("a"))', True),
    ('@(new[] {"b", "a"}.ToDictionary(s => s, s => s.ToUpper())["a"])', "A"),
    ('@(string.Join("|", new[] {"x", "yy"}.Select((s, i) => s + i)))', "x0|yy1"),
    # blocks
    (
        "@{ var t = 0; for (var i = 0; i < 5; i++) { if (i == 3) { continue; } t += i; } return t; }",  # noqa: E501
        7,
    ),
    ("@{ int n = 0; while (true) { n++; if (n > 4) break; } return n; }", 5),
    ('@{ var s = ""; foreach (var c in "abc") { s = c + s; } return s; }', "cba"),
    (
        '@{ switch (2) { case 1: return "one"; case 2: case 3: return "two"; default: return "x"; } }',  # noqa: E501
        "two",
    ),
    (
        '@{ try { return int.Parse("x"); } catch (FormatException ex) { return ex.Message.Length > 0; } }',  # noqa: E501
        True,
    ),
    (
        '@{ try { throw new InvalidOperationException("boom"); } catch (Exception e) { return e.Message; } }',  # noqa: E501
        "boom",
    ),
    ("@{ int Sq(int x) { return x * x; } return Sq(3) + Sq(4); }", 25),
    ("@{ int Fact(int n) => n <= 1 ? 1 : n * Fact(n - 1); return Fact(10); }", 3628800),
    ("@{ double d = 5; return d / 2; }", 2.5),
    ('@{ object o = "s"; if (o is string s) { return s + "!"; } return null; }', "s!"),
    ('@{ var o = (object)5 as string; return o ?? "null"; }', "null"),
    ("@{ var arr = new int[3]; arr[1] = 7; arr[2] += 2; return arr[1] + arr[2]; }", 9),
    ("@{ var x = 1; x <<= 3; x -= 1; return x; }", 7),
    ("@{ var i = 5; var j = i++ + ++i; return j; }", 12),
    ("@{ string s = null; return s?.Length ?? -1; }", -1),
    ("@{ string s = null; return s?.Trim().Length; }", None),
    ("@{ Func<int, int> f = x => x * 2; return f(21); }", 42),
    ("@(\"1,2,3\".Split(',').Select(int.Parse).Sum())", 6),
    ("@{ var f = new Thread(); return 1; }", "compile-error"),
    # `?.` binds tighter than binary operators (tree-sitter attaches it to the whole operation)
    ('@("B" + ((string)null)?.Length)', "B"),
    ('@("B" + "xy"?.Length + 1)', "B21"),
    ('@(1 + 2 * "abc"?.Trim().Length)', 7),
    ('@(true ? "a" : ((string)null)?.ToString())', "a"),
    # JSON
    ('@(JObject.Parse("{\\"a\\": 1}")["a"].Value<int>() + 1)', 2),
    ('@((string)JObject.Parse("{\\"a\\": \\"x\\"}")["a"])', "x"),
    ('@(JObject.Parse("{\\"a\\": {\\"b\\": [1, 2]}}").SelectToken("a.b[1]").ToString())', "2"),
    ('@(JObject.Parse("{\\"a\\": 1}")["missing"] == null)', True),
    (
        '@(new JObject(new JProperty("a", 1), new JProperty("b", new JArray("x", true))).ToString())',  # noqa: E501
        '{\n  "a": 1,\n  "b": [\n    "x",\n    true\n  ]\n}',
    ),
    (
        '@(new JObject(new JProperty("a", 1.0)).ToString(Newtonsoft.Json.Formatting.None))',
        '{"a":1.0}',
    ),
    (
        '@{ var o = new JObject(); o["x"] = "y"; o.Add("n", 2); o.Remove("x"); return o.ToString(Formatting.None); }',  # noqa: E501
        '{"n":2}',
    ),
    (
        '@{ var o = JObject.Parse("{\\"a\\":1,\\"b\\":2}"); o.Property("a").Remove(); return o.ToString(Formatting.None); }',  # noqa: E501
        '{"b":2}',
    ),
    ('@(JArray.Parse("[1,2,3]").Count)', 3),
    ('@((long)((JValue)JObject.Parse("{\\"a\\": 5}")["a"]).Value + 1)', 6),
    ('@(JObject.Parse("{\\"a\\": 5}").Properties().Select(p => p.Name).First())', "a"),
    ('@(JArray.Parse("[1,2,3]").Select(t => (int)t).Sum())', 6),
    ('@(JObject.Parse("{\\"a\\": true}")["a"].Type == JTokenType.Boolean)', True),
    ('@(JObject.Parse("{\\"s\\": \\"q\\\\\\"\\"}").ToString(Formatting.None))', '{"s":"q\\""}'),
    ('@(JsonConvert.SerializeObject(new { typ = "JWT", n = 1 }))', '{"typ":"JWT","n":1}'),
    (
        '@(new JObject(new JProperty("d", new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc))).ToString(Formatting.None))',  # noqa: E501
        '{"d":"2024-01-02T03:04:05Z"}',
    ),
    # crypto helpers
    (
        '@(Convert.ToBase64String(new HMACSHA256(Encoding.UTF8.GetBytes("k")).ComputeHash(Encoding.UTF8.GetBytes("m"))))',  # noqa: E501
        "tgCQ4wUil661oICInOL8S8qVfnVvrrTffTGADKHncew=",
    ),
    (
        '@(BitConverter.ToString(SHA256.Create().ComputeHash(Encoding.ASCII.GetBytes("abc"))).Substring(0, 11))',  # noqa: E501
        "BA-78-16-BF",
    ),
    (
        '@{ var k = new byte[16]; var iv = new byte[16]; var c = Encoding.UTF8.GetBytes("secret").Encrypt("Aes", k, iv); return Encoding.UTF8.GetString(c.Decrypt("Aes", k, iv)); }',  # noqa: E501
        "secret",
    ),
]

CONTEXT_CASES: list[tuple[str, object]] = [
    ("@(context.Request.Method)", "POST"),
    (
        '@(context.Request.Url.Host + ":" + context.Request.Url.Port + context.Request.Url.Path)',
        "api.example.com:443/orders/42",
    ),
    ('@(context.Request.Url.Query.GetValueOrDefault("page", "1"))', "2"),
    ('@(context.Request.Url.Query.GetValueOrDefault("size", "10"))', "10"),
    ("@(context.Request.Url.ToString())", "https://api.example.com/orders/42?page=2&sort=desc"),
    ('@(context.Request.Headers.GetValueOrDefault("accept", ""))', "application/json,text/plain"),
    ('@(context.Request.Headers["Accept"][1])', "text/plain"),
    (
        '@(context.Request.Headers.GetValueOrDefault("Authorization","").Replace("Bearer ", ""))',
        "t0k",
    ),
    (
        '@(context.Request.Headers.ContainsKey("X-Id") && !context.Request.Headers.ContainsKey("X-No"))',  # noqa: E501
        True,
    ),
    ("@(context.Request.Headers.Keys.Count())", 3),
    ('@(context.Request.Headers.Any(h => h.Key == "X-Id"))', True),
    ('@(context.Request.MatchedParameters["id"])', "42"),
    ('@(context.Request.Body.As<JObject>(preserveContent: true)["name"].ToString())', "Ada"),
    ('@((int)context.Request.Body.As<JObject>()["n"] * 2)', 6),
    ('@(context.Request.Body.As<JObject>()["tags"].Count())', 2),
    ('@(context.Request.Body.As<JObject>()["nested"]["ok"].Value<bool>())', True),
    ("@(context.Request.Body.As<string>().Length > 10)", True),
    ("@(context.Response.Body.As<JArray>().Count)", 3),
    ('@(context.Response.StatusCode == 200 ? "ok" : "ko")', "ok"),
    ('@((int)context.Variables["count"] + 1)', 6),
    ('@((string)context.Variables["name"] + "!")', "ada!"),
    ('@((bool)context.Variables["flag"])', True),
    ('@(context.Variables.GetValueOrDefault<int>("count", 0) * 2)', 10),
    ('@(context.Variables.GetValueOrDefault<string>("missing", "dflt"))', "dflt"),
    ('@(!context.Variables.GetValueOrDefault<bool>("missing"))', True),
    ('@(context.Variables.GetValueOrDefault<int>("missing") + 1)', 1),
    ('@(context.Variables.ContainsKey("nothing") && context.Variables["nothing"] == null)', True),
    ('@(((JObject)context.Variables["json"])["a"]["b"][1].ToString())', "20"),
    ('@(((JObject)context.Variables["json"]).Value<string>("s"))', "x"),
    ('@(((DateTime)context.Variables["when"]).ToString("o"))', "2024-03-05T07:08:09.0000000Z"),
    (
        '@(context.Deployment.Region.Equals("west europe", StringComparison.OrdinalIgnoreCase))',
        True,
    ),
    ("@(context.Deployment.Certificates.Count)", 2),
    (
        f'@(context.Deployment.Certificates.Any(c => c.Value.Thumbprint == "{DEPLOYED[1].thumbprint}"))',  # noqa: E501
        True,
    ),
    (
        f'@(context.Deployment.Certificates.Where(c => c.Key != "{DEPLOYED[0].thumbprint}").Select(c => c.Value.Subject).First())',  # noqa: E501
        "CN=deployed two",
    ),
    ("@(context.Request.Certificate == null)", True),
    ('@(context.Request.Certificate?.Thumbprint ?? "none")', "none"),
    (
        '@{ string id; return context.Request.MatchedParameters.TryGetValue("id", out id) ? id : "-"; }',  # noqa: E501
        "42",
    ),
    (
        "@{ var sum = 0; foreach (var kv in context.Deployment.Certificates) { sum += kv.Key.Length; } return sum; }",  # noqa: E501
        80,
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES + CONTEXT_CASES)
def test_evaluates_like_csharp(source: str, expected: object) -> None:
    if expected == "compile-error":
        from certgate.expressions import ExpressionCompileError

        with pytest.raises(ExpressionCompileError):
            compile_expression(source)
        return
    got = compile_expression(source).evaluate(build_context())
    same_type = type(got) is type(expected) or (isinstance(got, str) and isinstance(expected, str))
    assert got == expected and same_type, f"{source} -> {got!r}"


CERT_POLICIES = [
    "@(context.Request.Certificate == null "
    f'|| context.Request.Certificate.Thumbprint != "{CLIENT.thumbprint}")',
    "@(context.Request.Certificate == null || !context.Request.Certificate.Verify() "
    '|| context.Request.Certificate.Issuer != "CN=Expressions Root" '
    '|| context.Request.Certificate.Subject != "CN=client")',
    "@(context.Request.Certificate == null || !context.Deployment.Certificates.Any("
    "c => c.Value.Thumbprint == context.Request.Certificate.Thumbprint))",
]


@pytest.mark.parametrize("source", CERT_POLICIES)
def test_client_certificate_conditions(source: str) -> None:
    """The three documented APIM client-certificate checks reject, then accept."""
    expr = compile_expression(source)
    assert expr.evaluate(build_context()) is True
    assert expr.evaluate(build_context(certificate(STRANGER))) is True
    assert expr.evaluate(build_context(certificate(CLIENT))) is False


def test_timestamp_and_elapsed_come_from_the_request() -> None:
    ctx = build_context()
    stamp = compile_expression("@(context.Timestamp)").evaluate(ctx)
    assert abs(stamp - datetime.now(UTC)) < timedelta(seconds=5)
    elapsed = compile_expression("@(context.Elapsed.TotalMilliseconds)").evaluate(ctx)
    assert 0 <= elapsed < 5000
    as_types = (
        "@(context.Request.Body.As<System.String>(true).Length + "
        "context.Request.Body.As<Newtonsoft.Json.Linq.JObject>(true).Count)"
    )
    assert compile_expression(as_types).evaluate(ctx) == len(REQUEST_BODY) + 4


def test_now_is_close_to_the_clock() -> None:
    got = compile_expression("@(DateTime.UtcNow)").evaluate(None)
    assert abs(got - datetime.now(UTC)) < timedelta(seconds=5)


def test_call_sites_follow_receivers_of_changing_types() -> None:
    """Member lookups are cached per call site and receiver type: a site that sees several
    types in turn (or null between certificates) resolves each one as C# does."""
    parts = compile_expression(
        '@{ var s = ""; foreach (var x in new object[] { "ab", 12, "cd", 3.5, true }) '
        '{ s += x.ToString() + "|"; } return s; }'
    )
    assert parts.evaluate(build_context()) == "ab|12|cd|3.5|True|"
    thumbprint = compile_expression("@(context.Request.Certificate.Thumbprint.ToLower())")
    for _ in range(2):
        assert thumbprint.evaluate(build_context(certificate(CLIENT))) == CLIENT.thumbprint.lower()
        with pytest.raises(ExpressionRuntimeError, match="NullReferenceException"):
            thumbprint.evaluate(build_context())
