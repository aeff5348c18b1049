З■√ха4%spiffe://mesh.local/ns/shop/sa/ordersЗ■√ха4"deny*■[{"name":"orders-callers","namespace":"shop","service_account":"orders","action":"allow","mode":"enforce","rules":[{"name":"frontend-orders","from":[{"identity":"spiffe://mesh.local/ns/shop/sa/frontend"}],"to":[{"ports":[],"methods":["GET","POST"],"paths":["/orders","/orders/*"]}],"when":[]}],"file":"policies/orders.yaml"},{"name":"no-payments","namespace":"shop","service_account":"orders","action":"deny","mode":"enforce","rules":[{"name":"payments-never","from":[{"identity":"spiffe://mesh.local/ns/shop/sa/payments"}],"to":[],"when":[]}],"file":"policies/orders.yaml"},{"name":"orders-read-only","namespace":"shop","service_account":"orders","action":"deny","mode":"audit","rules":[{"name":"frontend-writes","from":[{"identity":"spiffe://mesh.local/ns/shop/sa/frontend"}],"to":[{"ports":[],"methods":["POST","PUT","DELETE","PATCH"],"paths":[]}],"when":[]}],"file":"policies/orders.yaml"}]2L
frontendshop:
127.0.0.1:37901'spiffe://mesh.local/ns/shop/sa/frontend2H
ordersshop8
127.0.0.1:39703%spiffe://mesh.local/ns/shop/sa/orders2L
paymentsshop:
127.0.0.1:33797'spiffe://mesh.local/ns/shop/sa/payments:Ш-----BEGIN CERTIFICATE-----
MIIBvjCCAWSgAwIBAgIJAJMlLQDkIoPhMAoGCCqGSM49BAMCMDExEzARBgNVBAoT
Cm1lc2gubG9jYWwxGjAYBgNVBAMTEU1lc2hHdWFyZCBSb290IENBMB4XDTI2MTEy
NDA4NDkwMVoXDTM2MTEyMTA4NDkzMVowMTETMBEGA1UEChMKbWVzaC5sb2NhbDEa
MBgGA1UEAxMRTWVzaEd1YXJkIFJvb3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAAQf9zchpJdVUxLSkTFrEmocmEF6cktHr9UeEIhlg+lZ51KfKlULpx7C5MPe
BOGYypSK6QXxqUUg8AZ9UjcCYCVfo2UwYzASBgNVHRMBAf8ECDAGAQH/AgEBMA4G
A1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUldvvIKPK/HoTFJKj5TciNMV8GsgwHgYD
VR0RBBcwFYYTc3BpZmZlOi8vbWVzaC5sb2NhbDAKBggqhkjOPQQDAgNIADBFAiEA
+fbHT0g8uw2Izjl3sLNIpZabGTu/1qDJbSySzEbQ33ACIDr7VHhdRqWjYYFPYp0D
p3YrVJC/PI3KUlqjJMi8Shni
-----END CERTIFICATE-----
