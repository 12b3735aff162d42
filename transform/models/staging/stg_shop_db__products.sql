with

source as (

    select * from {{ source('shop_db', 'products') }}

),

renamed as (

    select

        ----------  ids
        product_id,

        ---------- text
        name as product_name,
        category,

        ---------- numerics
        cast(price as numeric(12, 2)) as price,

        ---------- timestamps
        updated_at,

        ---------- lineage
        _dlt_load_id as dlt_load_id

    from source

)

select * from renamed
