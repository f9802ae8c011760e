// What DBeaver, Metabase and other JDBC tools ask first: schemas, tables, columns (through
// DatabaseMetaData, i.e. pgjdbc's own pg_catalog queries) and a prepared statement. Run by
// crates/weir/tests/pg.rs as `java -cp <pgjdbc jar> Check.java <port>`.
import java.sql.*;
public class Check {
  public static void main(String[] a) throws Exception {
    try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + a[0] + "/shop", "bi", "")) {
      DatabaseMetaData md = c.getMetaData();
      System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
      try (ResultSet rs = md.getSchemas()) { while (rs.next()) System.out.println("schema " + rs.getString(1)); }
      try (ResultSet rs = md.getTables(null, "public", "%", new String[]{"TABLE","VIEW"})) { while (rs.next()) System.out.println("table " + rs.getString(3) + " " + rs.getString(4)); }
      try (ResultSet rs = md.getColumns(null, "public", "silver_events", "%")) { while (rs.next()) System.out.println("column " + rs.getString(4) + " " + rs.getString(6)); }
      try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM silver_events WHERE product_category = ?")) {
        ps.setString(1, "books"); try (ResultSet rs = ps.executeQuery()) { rs.next(); System.out.println("count " + rs.getLong(1)); }
      }
    }
  }
}
