-- What the daemon's writer assumes without waiting for an answer (pipelined), checked by the
-- server: the statement fails, and with it the transaction, when the assumption is wrong
-- (SQLSTATE AXST0: the daemon runs the batch again, then reading the answer).
CREATE FUNCTION axme_changed_one(n BIGINT) RETURNS INTEGER LANGUAGE plpgsql AS $$
BEGIN
    IF n <> 1 THEN
        RAISE EXCEPTION 'a conditional write changed % rows, not 1', n USING ERRCODE = 'AXST0';
    END IF;
    RETURN 1;
END $$;
CREATE FUNCTION axme_found_none(n BIGINT) RETURNS INTEGER LANGUAGE plpgsql AS $$
BEGIN
    IF n <> 0 THEN
        RAISE EXCEPTION 'a read assumed to find nothing found % rows', n USING ERRCODE = 'AXST0';
    END IF;
    RETURN 0;
END $$;
