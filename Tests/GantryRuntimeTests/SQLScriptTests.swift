import GantryRuntime
import Testing

@Suite struct SQLScriptTests {
    @Test func splitsOnSemicolonsAndTrims() {
        #expect(SQLScript.statements("  SELECT 1;\n\nSELECT 2 ;;  ; SELECT 3") == ["SELECT 1", "SELECT 2", "SELECT 3"])
        #expect(SQLScript.statements("") == [])
        #expect(SQLScript.statements(" ;\n; ") == [])
    }

    @Test func keepsSemicolonsInsideQuotes() {
        let script = """
            INSERT INTO t VALUES ('a;b', 'it''s; fine');
            CREATE TABLE "odd;name" ("col""; x" int);
            SELECT 1
            """
        #expect(SQLScript.statements(script) == [
            "INSERT INTO t VALUES ('a;b', 'it''s; fine')",
            #"CREATE TABLE "odd;name" ("col""; x" int)"#,
            "SELECT 1",
        ])
    }

    @Test func keepsDollarQuotedBodiesWhole() {
        let function = """
            CREATE FUNCTION touch() RETURNS trigger AS $$
            BEGIN NEW.updated_at = now(); RETURN NEW; END;
            $$ LANGUAGE plpgsql
            """
        let tagged = """
            DO $body$ BEGIN PERFORM 1; EXECUTE $$SELECT ';'$$; END $body$
            """
        #expect(SQLScript.statements(function + ";\n" + tagged + ";\nSELECT 2;") == [function, tagged, "SELECT 2"])
    }

    @Test func dropsComments() {
        let script = """
            -- leading comment; with a semicolon and it's apostrophe
            SELECT 1; /* block; comment 'quote */ SELECT 2;
            SELECT '-- not a comment; really' -- trailing
            """
        #expect(SQLScript.statements(script) == ["SELECT 1", "SELECT 2", "SELECT '-- not a comment; really'"])
    }

    @Test func dollarInsideAnIdentifierIsNotAQuote() {
        // PostgreSQL manual 4.1.1: `$` may appear in an identifier after its first character, and
        // 4.1.2.4: a dollar quote after an identifier must be separated by whitespace.
        #expect(SQLScript.statements("SELECT a$b$c FROM t; SELECT 2") == ["SELECT a$b$c FROM t", "SELECT 2"])
    }

    @Test func positionalParameterIsNotAQuote() {
        #expect(SQLScript.statements("SELECT $1; SELECT $2") == ["SELECT $1", "SELECT $2"])
    }
}
