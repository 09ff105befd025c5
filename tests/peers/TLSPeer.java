// A JSSE (Java's own TLS stack) peer for aiotls's interop tests: tests/peers.py compiles it
// with javac into a temporary directory and runs it on loopback.
//
//   java TLSPeer server --keystore K.p12 --storepass PW [--trust CA.pem] [--need-client-auth]
//                [--protocols TLSv1.3,TLSv1.2] [--alpn a,b] [--echo N] [--count K]
//   java TLSPeer client --port P [--host H] [--sni NAME] --trust CA.pem
//                [--keystore K.p12 --storepass PW] [--protocols ...] [--alpn a,b] [--echo N]
//                [--count K]
//
// The server listens on 127.0.0.1 on an ephemeral port and prints "LISTENING <port>"; it
// accepts K connections one after another.  Per connection each side prints one line
// "HANDSHAKE <protocol> <suite> <alpn|-> <peer subject|->", echoes N bytes (the client writes
// N bytes and reads them back; the server reads N bytes and writes them back), then closes
// with SSLSocket.close() -- in TLS 1.3 that sends user_canceled, then close_notify -- and
// prints "CLOSED".  Any failure prints "ERROR <exception>" and exits with status 1; the end
// is "DONE".  Every socket operation has a timeout.
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class TLSPeer {
    private static final int TIMEOUT_MS = 10_000;

    public static void main(String[] args) {
        try {
            run(args);
            System.out.println("DONE");
            System.out.flush();
        } catch (Exception e) {
            System.out.println("ERROR " + e);
            System.out.flush();
            System.exit(1);
        }
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> out = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            String name = args[i];
            if (!name.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + name);
            }
            if (name.equals("--need-client-auth")) {
                out.put(name, "yes");
            } else {
                out.put(name, args[++i]);
            }
        }
        return out;
    }

    private static void run(String[] args) throws Exception {
        Map<String, String> opts = options(args);
        SSLContext ctx = context(opts);
        int count = Integer.parseInt(opts.getOrDefault("--count", "1"));
        int echo = Integer.parseInt(opts.getOrDefault("--echo", "0"));
        if (args[0].equals("server")) {
            try (SSLServerSocket listener = (SSLServerSocket) ctx.getServerSocketFactory()
                    .createServerSocket(0, 16, InetAddress.getByName("127.0.0.1"))) {
                listener.setSoTimeout(TIMEOUT_MS);
                System.out.println("LISTENING " + listener.getLocalPort());
                System.out.flush();
                for (int i = 0; i < count; i++) {
                    SSLSocket sock = (SSLSocket) listener.accept();
                    configure(sock, opts);
                    if (opts.containsKey("--need-client-auth")) {
                        sock.setNeedClientAuth(true);
                    }
                    serve(sock, echo, false);
                }
            }
        } else if (args[0].equals("client")) {
            String host = opts.getOrDefault("--host", "127.0.0.1");
            int port = Integer.parseInt(opts.get("--port"));
            for (int i = 0; i < count; i++) {
                SSLSocket sock = (SSLSocket) ctx.getSocketFactory().createSocket();
                sock.connect(new InetSocketAddress(host, port), TIMEOUT_MS);
                configure(sock, opts);
                SSLParameters params = sock.getSSLParameters();
                params.setEndpointIdentificationAlgorithm("HTTPS");
                params.setServerNames(List.of(new SNIHostName(opts.getOrDefault("--sni", "localhost"))));
                sock.setSSLParameters(params);
                serve(sock, echo, true);
            }
        } else {
            throw new IllegalArgumentException("first argument: server or client");
        }
    }

    private static void configure(SSLSocket sock, Map<String, String> opts) throws Exception {
        sock.setSoTimeout(TIMEOUT_MS);
        SSLParameters params = sock.getSSLParameters();
        if (opts.containsKey("--protocols")) {
            params.setProtocols(opts.get("--protocols").split(","));
        }
        if (opts.containsKey("--alpn")) {
            params.setApplicationProtocols(opts.get("--alpn").split(","));
        }
        sock.setSSLParameters(params);
    }

    private static void serve(SSLSocket sock, int echo, boolean client) throws Exception {
        try {
            sock.startHandshake();
            var session = sock.getSession();
            String alpn = sock.getApplicationProtocol();
            String peer = "-";
            try {
                Certificate[] chain = session.getPeerCertificates();
                peer = ((X509Certificate) chain[0]).getSubjectX500Principal().getName()
                        .replace(' ', '_');
            } catch (SSLPeerUnverifiedException e) {
                // no certificate from the peer
            }
            System.out.println("HANDSHAKE " + session.getProtocol() + " " + session.getCipherSuite()
                    + " " + (alpn == null || alpn.isEmpty() ? "-" : alpn) + " " + peer);
            System.out.flush();
            InputStream in = sock.getInputStream();
            OutputStream out = sock.getOutputStream();
            byte[] data = new byte[echo];
            if (client) {
                for (int i = 0; i < echo; i++) {
                    data[i] = (byte) ('a' + i % 26);
                }
                out.write(data);
                out.flush();
            }
            int got = 0;
            while (got < echo) {
                int n = in.read(data, got, echo - got);
                if (n < 0) {
                    throw new java.io.EOFException("peer closed after " + got + " of " + echo + " bytes");
                }
                got += n;
            }
            if (client) {
                for (int i = 0; i < echo; i++) {
                    if (data[i] != (byte) ('a' + i % 26)) {
                        throw new IllegalStateException("echo differs at byte " + i);
                    }
                }
            } else {
                out.write(data);
                out.flush();
            }
        } finally {
            sock.close();
        }
        System.out.println("CLOSED");
        System.out.flush();
    }

    private static SSLContext context(Map<String, String> opts) throws Exception {
        KeyManagerFactory kmf = null;
        if (opts.containsKey("--keystore")) {
            char[] password = opts.getOrDefault("--storepass", "").toCharArray();
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (FileInputStream f = new FileInputStream(opts.get("--keystore"))) {
                ks.load(f, password);
            }
            // PKIX (not the JDK default SunX509): it checks the chain against what the peer
            // accepts (signature_algorithms_cert), as servers built on it do.
            kmf = KeyManagerFactory.getInstance("PKIX");
            kmf.init(ks, password);
        }
        TrustManagerFactory tmf = null;
        if (opts.containsKey("--trust")) {
            KeyStore ts = KeyStore.getInstance("PKCS12");
            ts.load(null, null);
            List<Certificate> cas = new ArrayList<>();
            try (FileInputStream f = new FileInputStream(opts.get("--trust"))) {
                cas.addAll(CertificateFactory.getInstance("X.509").generateCertificates(f));
            }
            for (int i = 0; i < cas.size(); i++) {
                ts.setCertificateEntry("ca" + i, cas.get(i));
            }
            tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ts);
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf == null ? null : kmf.getKeyManagers(),
                tmf == null ? null : tmf.getTrustManagers(), null);
        return ctx;
    }
}
